"""Feeds from files and readable summaries of outputs, for ``mmexport run`` and scripts alike.

A feed file is ``.npy`` (one input's array: a whole batch, or one sample without the batch axis,
which then gets one), ``.npz`` (arrays by input name), or a raw file (image, text, wav) that
``mmexport.data.preprocess`` turns into one sample as the input's ``preprocess`` says.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.errors import DataError
from mmexport.core.spec import InputSpec, ModelSpec, OutputSpec
from mmexport.data.feeds import check_int_range, with_masks
from mmexport.data.npy_headers import check_npz_members, npy_size_problem, spec_max_bytes


def read_feeds(sources: Sequence[tuple[str | None, Path]], spec: ModelSpec) -> dict[str, np.ndarray]:
    """``(input name, file)`` pairs -> feeds; a name of None takes every array of an ``.npz``."""
    feeds: dict[str, np.ndarray] = {}
    origin: dict[str, Path] = {}
    for name, path in sources:
        if name is None:
            arrays = _read_npz_all(path, spec)
            for key in arrays:
                _refuse_twice(key, path, origin)
            feeds.update(arrays)
            continue
        inp = _input_named(name, spec, path)
        _refuse_twice(inp.name, path, origin)
        feeds[inp.name] = read_input_file(path, inp, spec)
    feeds = dict(with_masks(feeds, spec))  # a mask not given follows its token input's padding
    for key, array in feeds.items():
        if key in origin and key in spec.input_names:
            _check_ids(array, spec.input(key), spec, feeds, sample=str(origin[key]))
    return feeds


def _check_ids(
    array: np.ndarray, inp: InputSpec, spec: ModelSpec, feeds: dict[str, np.ndarray], *, sample: str
) -> None:
    """Token ids inside the input's range where its mask (if any) keeps them: -1 would wrap in
    Gather, not fail; padding the mask leaves out may sit outside the range."""
    mask = spec.mask_for(inp.name)
    if mask is not None and mask.name in feeds and np.shape(feeds[mask.name]) == np.shape(array):
        array = np.asarray(array)[np.asarray(feeds[mask.name]) != 0]
    check_int_range(np.asarray(array), inp, sample=sample)


def _input_named(name: str, spec: ModelSpec, path: Path) -> InputSpec:
    """The input called ``name``, or the only input of modality ``name`` (``text=q.txt``)."""
    key = spec.input_keys().get(name)
    if key is not None:
        return spec.input(key)
    raise DataError(
        f"the model has no input {name!r} (it takes {', '.join(spec.input_names)})", sample=str(path)
    )


def _refuse_twice(name: str, path: Path, origin: dict[str, Path]) -> None:
    """Each input comes from one file: a second one is a mistake, not a replacement."""
    if name in origin:
        raise DataError(
            f"input {name!r} is given twice ({str(origin[name])!r} and {str(path)!r}); give each input once",
            sample=str(path),
            field=name,
        )
    origin[name] = path


def _missing(path: Path) -> str:
    return f"{str(path)!r} is a folder, not a file" if path.is_dir() else f"file {str(path)!r} does not exist"


def read_input_file(path: Path, inp: InputSpec, spec: ModelSpec) -> np.ndarray:
    """One input's array from ``path``, with the batch axis."""
    if not path.is_file():
        raise DataError(_missing(path), sample=str(path), field=inp.name)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = _load_array(path, inp.name, spec_max_bytes(spec, inp.name))
    elif suffix == ".npz":
        arrays = _read_npz_all(path, spec)
        if inp.name not in arrays and len(arrays) != 1:
            raise DataError(f"holds {', '.join(arrays)}, not {inp.name!r}", sample=str(path), field=inp.name)
        array = arrays.get(inp.name, next(iter(arrays.values())))
    else:
        from mmexport.data.preprocess import load_file

        return load_file(path, inp, spec)[None]
    return array[None] if array.ndim == len(inp.shape) - 1 else array


def _load_array(path: Path, field: str | None, max_bytes: int) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            problem = npy_size_problem(f, path.stat().st_size, "the file", max_bytes)
        array = None if problem else np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot be read as a .npy array ({e})", sample=str(path), field=field) from e
    if problem:
        raise DataError(problem, sample=str(path), field=field)
    if not isinstance(array, np.ndarray):
        raise DataError("is not a single .npy array", sample=str(path), field=field)
    return array


def _read_npz_all(path: Path, spec: ModelSpec) -> dict[str, np.ndarray]:
    if path.suffix.lower() != ".npz":
        raise DataError("give NAME=FILE, or an .npz file of arrays by input name", sample=str(path))
    if not path.is_file():
        raise DataError(_missing(path), sample=str(path))
    try:
        check_npz_members(path, spec)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"cannot be read as an .npz archive ({e})", sample=str(path)) from e


def top_k(scores: np.ndarray, labels: Sequence[str], k: int) -> list[list[dict[str, Any]]]:
    """Per row (all leading axes flattened), the ``k`` best labels with score and probability.

    The probability is the score itself when each row already sums to 1 within [0, 1], else
    softmax of the scores (logits). A row with a non-finite score (NaN, inf) gets no ranking: [].
    """
    rows = scores.reshape(-1, scores.shape[-1]).astype(np.float64)
    finite = np.all(np.isfinite(rows), axis=1, keepdims=False).reshape(-1)
    if np.all((rows >= 0) & (rows <= 1)) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3):
        probs = rows
    else:
        shifted = np.exp(rows - rows.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
    out: list[list[dict[str, Any]]] = []
    for row, prob, ok in zip(rows, probs, finite, strict=True):
        if not ok:  # NaN would sort as a top label; such a row is not ranked
            out.append([])
            continue
        best = np.argsort(-row, kind="stable")[:k]
        out.append(
            [{"label": labels[i], "score": float(row[i]), "probability": float(prob[i])} for i in best]
        )
    return out


def summarize_outputs(
    outputs: Mapping[str, np.ndarray], specs: Sequence[OutputSpec], k: int = 5
) -> dict[str, dict[str, Any]]:
    """Shape, dtype, values, and top-k where the spec gives labels matching the last axis.

    Non-finite values become None in ``values`` (valid JSON) and are counted in ``non_finite``."""
    labels = {o.name: o.labels for o in specs}
    out = {}
    for name, value in outputs.items():
        entry: dict[str, Any] = {"shape": list(value.shape), "dtype": str(value.dtype)}
        names = labels.get(name)
        if names and value.ndim >= 1 and value.shape[-1] == len(names):
            entry["top_k"] = top_k(value, names, k)
        bad = non_finite(value)
        if bad:
            entry["non_finite"] = bad
        entry["values"] = _finite_or_none(value) if bad else value.tolist()
        out[name] = entry
    return out


def non_finite(value: np.ndarray) -> int:
    """How many NaN and infinite values ``value`` holds (0 for integer and bool arrays)."""
    if value.dtype.kind not in "fc":
        return 0
    return int(value.size - np.count_nonzero(np.isfinite(value)))


def _finite_or_none(value: np.ndarray) -> Any:
    """``value.tolist()`` with None for each NaN and inf, which JSON cannot hold."""
    if value.ndim == 0:
        item = value.item()
        return item if np.isfinite(item) else None
    return [_finite_or_none(v) for v in value]
