"""Data on disk: a folder of sample folders, a folder with ``index.jsonl``, and ``.npz`` batches.

Sample files are read one batch at a time (``preprocess.load_file``), so memory stays flat
whatever the folder's size; only the list of paths is held.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.errors import DataError
from mmexport.core.json_limits import loads_limited, tree_problem
from mmexport.core.spec import ModelSpec
from mmexport.data.feeds import (
    LABEL,
    Batch,
    batch_limit,
    hash_file,
    new_digest,
    padded_inputs,
    parse_label,
    require_batches,
    shape_point,
    take,
    validate_batch,
)
from mmexport.data.preprocess import load_file

INDEX_FILE = "index.jsonl"
MAX_INDEX_LINE = 1 << 20
"""The longest line of ``index.jsonl``: a sample's file names and label, with room to spare."""
LABEL_FILE = "label.txt"
_INDEX_KEYS = {"label", "name"}


@dataclass(frozen=True)
class SampleFiles:
    """One sample on disk: its name, a file per input, and its class id (or None)."""

    name: str
    files: dict[str, Path]
    label: int | None = None


class FolderSource:
    """Samples listed from sample folders or an index, grouped into batches of equal shapes."""

    def __init__(self, root: Path, spec: ModelSpec, samples: list[SampleFiles], batch_size: int) -> None:
        if not samples:
            raise DataError(f"folder {str(root)!r} holds no samples")
        labelled = [s.label is not None for s in samples]
        if any(labelled) and not all(labelled):
            missing = samples[labelled.index(False)]
            raise DataError("has no label while other samples have one", sample=missing.name, field=LABEL)
        self.root = root
        self.spec = spec
        self.samples = samples
        self.batch_size = batch_limit(spec, batch_size)
        self.description = f"folder {str(root)!r} ({len(samples)} samples)"

    def batches(self) -> Iterator[Batch]:
        return require_batches(self._batches(), self.description)

    def _batches(self) -> Iterator[Batch]:
        pads = padded_inputs(self.spec)
        group: list[tuple[SampleFiles, dict[str, np.ndarray]]] = []
        key: tuple[Any, ...] = ()
        for sample in self.samples:
            arrays = self._load(sample)
            sample_key = tuple(a.shape[:-1] if n in pads else a.shape for n, a in arrays.items())
            if group and (sample_key != key or len(group) == self.batch_size):
                yield self._stack(group, pads)
                group = []
            key = sample_key
            group.append((sample, arrays))
        if group:
            yield self._stack(group, pads)

    def _load(self, sample: SampleFiles) -> dict[str, np.ndarray]:
        arrays = {
            inp.name: load_file(sample.files[inp.name], inp, self.spec, sample=sample.name)
            for inp in self.spec.inputs
        }
        shape_point(arrays, self.spec, sample=sample.name, batched=False)
        return arrays

    def _stack(self, group: list[tuple[SampleFiles, dict[str, np.ndarray]]], pads: dict[str, int]) -> Batch:
        feed: dict[str, np.ndarray] = {}
        for inp in self.spec.inputs:
            rows = [arrays[inp.name] for _, arrays in group]
            if inp.name in pads:
                longest = max(r.shape[-1] for r in rows)
                tail = [[(0, 0)] * (r.ndim - 1) + [(0, longest - r.shape[-1])] for r in rows]
                rows = [np.pad(r, t, constant_values=pads[inp.name]) for r, t in zip(rows, tail, strict=True)]
            feed[inp.name] = np.stack(rows)
        names = tuple(s.name for s, _ in group)
        labels = None
        if group[0][0].label is not None:
            labels = np.asarray([s.label for s, _ in group], dtype=np.int64)
        return validate_batch(feed, self.spec, batch=names[0], labels=labels, names=names)

    def fingerprint(self) -> str:
        digest = new_digest("folder")
        digest.update(json.dumps([i.to_dict() for i in self.spec.inputs], sort_keys=True).encode())
        for sample in self.samples:
            digest.update(f"\nsample {sample.name} label {sample.label!r}\n".encode())
            for name, path in sample.files.items():
                digest.update(f"{name}\n".encode())
                hash_file(digest, path)
        return digest.hexdigest()


def list_sample_folders(root: Path, spec: ModelSpec, limit: int | None) -> list[SampleFiles]:
    """One SampleFiles per sub-folder of ``root`` (sorted by name), at most ``limit``."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(
            f"folder {str(root)!r} has no sample sub-folders, no {INDEX_FILE} and no .npz files",
            hint="one sub-folder per sample, with files named after the inputs (image.png, tokens.txt)",
        )
    by_name = spec.input_keys()
    out = []
    for folder in folders[:limit]:
        name = f"{root.name}/{folder.name}"
        files: dict[str, Path] = {}
        label = None
        for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
            if path.name == LABEL_FILE:
                label = parse_label(_read_label(path, name), spec, sample=name)
                continue
            _add_file(files, by_name, path.stem, path, name, spec)
        out.append(SampleFiles(name, _complete(files, spec, name, folder), label))
    return out


def read_index(root: Path, spec: ModelSpec, limit: int | None) -> list[SampleFiles]:
    """The samples of ``root/index.jsonl``: one JSON object a line, paths relative to the index."""
    by_name = spec.input_keys()
    out: list[SampleFiles] = []
    with (root / INDEX_FILE).open("rb") as f:
        for lineno, raw in enumerate(iter(lambda: f.readline(MAX_INDEX_LINE + 1), b""), start=1):
            if limit is not None and len(out) >= limit:
                break
            where = f"{root.name}/{INDEX_FILE}:{lineno}"
            entry = _index_entry(raw, where)
            if entry is None:
                continue
            if not isinstance(entry, dict):
                raise DataError(f"expected a JSON object, got {type(entry).__name__}", sample=where)
            name = str(entry.get("name", where))
            files: dict[str, Path] = {}
            for key, value in entry.items():
                if key in _INDEX_KEYS:
                    continue
                if not isinstance(value, str):
                    raise DataError(f"expected a file path, got {value!r}", sample=name, field=key)
                _add_file(files, by_name, key, root / value, name, spec)
            label = entry.get("label")
            label = None if label is None else parse_label(label, spec, sample=name)
            out.append(SampleFiles(name, _complete(files, spec, name, None), label))
    if not out:
        raise DataError(f"{str(root / INDEX_FILE)!r} lists no samples")
    return out


def _index_entry(raw: bytes, where: str) -> Any:
    """One line of ``index.jsonl`` parsed as untrusted JSON (see ``core.json_limits``), or None
    for a blank line; every failure is one DataError naming the line."""
    if len(raw) > MAX_INDEX_LINE:
        raise DataError(f"is longer than {MAX_INDEX_LINE} bytes; one sample a line", sample=where)
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"is not UTF-8 text ({e.reason} at byte {e.start})", sample=where) from None
    if not line.strip():
        return None
    try:
        entry = loads_limited(line)
    except ValueError as e:  # JSONDecodeError, a key twice, nesting, long integers, NaN
        raise DataError(f"not valid JSON: {e}", sample=where) from None
    problem = tree_problem(entry)
    if problem is not None:
        raise DataError(problem, sample=where)
    return entry


def _read_label(path: Path, sample: str) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_INDEX_LINE + 1)
        if len(raw) > MAX_INDEX_LINE:
            raise DataError(
                f"{path.name!r} is longer than {MAX_INDEX_LINE} bytes", sample=sample, field=LABEL
            )
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path.name!r}: {e}", sample=sample, field=LABEL) from e


def _add_file(
    files: dict[str, Path], by_name: dict[str, str], key: str, path: Path, sample: str, spec: ModelSpec
) -> None:
    if key not in by_name:
        raise DataError(
            f"{path.name!r} names no input of the spec",
            sample=sample,
            field=key,
            hint=f"spec inputs: {', '.join(spec.input_names)} (or their modality when unique)",
        )
    name = by_name[key]
    if name in files:
        raise DataError(f"two files: {files[name].name!r} and {path.name!r}", sample=sample, field=name)
    files[name] = path


def _complete(files: dict[str, Path], spec: ModelSpec, sample: str, folder: Path | None) -> dict[str, Path]:
    for inp in spec.inputs:
        if inp.name not in files:
            where = f" in {str(folder)!r}" if folder is not None else ""
            raise DataError(f"no file {inp.name}.*{where}", sample=sample, field=inp.name)
    return {inp.name: files[inp.name] for inp in spec.inputs}


class NpzSource:
    """``.npz`` files, each one batch: arrays named after the inputs, optional ``labels``."""

    def __init__(self, paths: list[Path], spec: ModelSpec, samples: int | None, description: str) -> None:
        if not paths:
            raise DataError(f"{description} holds no .npz files")
        self.paths = paths
        self.spec = spec
        self.samples = samples
        self.description = description

    def batches(self) -> Iterator[Batch]:
        return require_batches(take(self._batches(), self.samples), self.description)

    def _batches(self) -> Iterator[Batch]:
        for path in self.paths:
            arrays = _read_npz(path, self.spec)
            labels = arrays.pop("labels", None)
            yield validate_batch(arrays, self.spec, batch=path.name, labels=labels)

    def fingerprint(self) -> str:
        digest = new_digest("npz")
        digest.update(f"samples {self.samples}\n".encode())
        for path in self.paths:
            digest.update(f"{path.name}\n".encode())
            hash_file(digest, path)
        return digest.hexdigest()


def _read_npz(path: Path, spec: ModelSpec) -> dict[str, np.ndarray]:
    from mmexport.data.npy_headers import check_npz_members  # the headers, before numpy allocates them

    try:
        check_npz_members(path, spec)
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"cannot read {path.name!r} as .npz: {e}", sample=path.name) from e
