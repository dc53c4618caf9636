"""The data contract shared by every source: feeds, validated batches, shape coverage.

A feed is ``dict[str, numpy.ndarray]`` with the batch axis first. Every batch a source yields
went through ``validate_batch``: it has exactly the spec's inputs, in the spec's dtypes, with
every dim in range and shared dims equal, so that calibration and evaluation never meet a
shape the spec does not allow. numpy only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mmexport.core.errors import DataError
from mmexport.core.spec import INT_DTYPES, InputSpec, ModelSpec
from mmexport.data.preprocess import cast_to, check_array

Feed = dict[str, np.ndarray]
"""Input name -> batched array (batch axis first)."""

LABEL = "label"
"""The ``field`` of a DataError about a label."""


@dataclass(frozen=True)
class Batch:
    """One validated batch: the feed, optional class ids and the names of its samples."""

    feed: Feed
    labels: np.ndarray | None
    """int64 [n] class ids, indexing the labels of the spec's first output; None without labels."""
    names: tuple[str, ...]
    """Sample names, for error messages and reports."""

    @property
    def size(self) -> int:
        return len(self.names)


@runtime_checkable
class FeedSource(Protocol):
    """Calibration or evaluation data: batches that restart from the beginning on every call."""

    description: str

    def batches(self) -> Iterator[Batch]:
        """The batches, the same data on every call."""
        ...

    def fingerprint(self) -> str:
        """sha256 hex identifying the data (file contents, or generator, seed and count)."""
        ...


def validate_batch(
    feed: Any,
    spec: ModelSpec,
    *,
    batch: str,
    labels: Any = None,
    names: Sequence[str] | None = None,
) -> Batch:
    """Check ``feed`` (and ``labels``) against the spec and return them as a Batch.

    Arrays are cast to the spec's exact dtypes (ints for int inputs, floats for float inputs
    only). ``batch`` names the batch in errors about the whole batch; ``names`` name its samples
    (default ``batch[0]``, ``batch[1]``, ...).
    """
    if not isinstance(feed, Mapping):
        raise DataError(
            f"expected a feed dict of input name -> array, got {type(feed).__name__}", sample=batch
        )
    for key in feed:
        if key not in spec.input_names:
            raise DataError(
                "is not an input of the spec", sample=batch, field=str(key), hint=_inputs_hint(spec)
            )
    out: Feed = {}
    given = with_masks(feed, spec)
    for inp in spec.inputs:
        if inp.name not in given:
            raise DataError("is missing", sample=batch, field=inp.name, hint=_inputs_hint(spec))
        array = np.asarray(given[inp.name])
        check_array(array, inp, spec, sample=batch, batched=True)
        out[inp.name] = cast_to(array, inp, sample=batch)
    for inp in spec.inputs:
        mask = spec.mask_for(inp.name)
        values = out[inp.name]
        if mask is not None and out[mask.name].shape == values.shape:
            values = values[out[mask.name] != 0]  # padding may sit outside the range
        check_values(values, inp, sample=batch)
    shape_point(out, spec, sample=batch)
    size = next(iter(out.values())).shape[0]
    _check_batch_axis(out, size, batch)
    if names is None:
        names = [f"{batch}[{j}]" for j in range(size)]
    if len(names) != size:
        raise ValueError(f"{len(names)} names for a batch of {size}")
    return Batch(out, check_labels(labels, spec, tuple(names), batch=batch), tuple(names))


def with_masks(feed: Mapping[str, Any], spec: ModelSpec) -> Mapping[str, Any]:
    """``feed`` with the masks it lacks (inputs with ``mask_of``) made from their token inputs:
    1 up to each row's last token that is not the padding id, 0 after it."""
    missing = [i for i in spec.inputs if i.mask_of is not None and i.name not in feed and i.mask_of in feed]
    if not missing:
        return feed
    out = dict(feed)
    for inp in missing:
        source = str(inp.mask_of)
        ids = np.asarray(feed[source])
        pad = spec.padding_id(source)
        out[inp.name] = padding_mask(ids, 0 if pad is None else pad).astype(inp.dtype)
    return out


def padding_mask(ids: np.ndarray, pad: int) -> np.ndarray:
    """True on each row's tokens, False on the run of ``pad`` ids that ends it."""
    if ids.ndim == 0:
        return np.ones((), bool)
    real = ids != pad
    width = ids.shape[-1]
    last = width - np.argmax(real[..., ::-1], axis=-1)  # one past the last real token
    last = np.where(real.any(axis=-1), last, 0)
    return np.arange(width) < last[..., None]


def check_values(array: np.ndarray, inp: InputSpec, *, sample: str) -> None:
    """Calibration and evaluation data must be finite, and integers inside the input's ``range``
    (a token id past the vocabulary would crash the model's lookup, not teach it anything)."""
    if array.size == 0:
        return
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise DataError(f"holds {bad} NaN or infinite value(s)", sample=sample, field=inp.name)
    check_int_range(array, inp, sample=sample)


def check_int_range(array: np.ndarray, inp: InputSpec, *, sample: str) -> None:
    """Integers inside the input's ``range`` (padding aside): token ids index an embedding table,
    where ONNX Gather takes -1 as the last row and an id past it fails or reads garbage."""
    if array.size and inp.range is not None and np.issubdtype(array.dtype, np.integer):
        low, high = inp.range
        pad = (inp.preprocess or {}).get("pad")
        values = array if pad is None else array[array != pad]  # padding may sit outside the range
        if values.size == 0:
            return
        lo, hi = int(values.min()), int(values.max())
        if lo < low or hi >= high:
            raise DataError(
                f"values must be in [{low}, {high}) (the spec's range), got {lo}..{hi}",
                sample=sample,
                field=inp.name,
            )


def shape_point(
    feed: Mapping[str, np.ndarray], spec: ModelSpec, *, sample: str, batched: bool = True
) -> dict[str, int]:
    """The value of every named dim in ``feed``; a dim shared by inputs must be equal in all."""
    point: dict[str, int] = {}
    where: dict[str, str] = {}
    for inp in spec.inputs:
        if inp.name not in feed:
            continue
        shape = inp.shape if batched else inp.shape[1:]
        for axis, dim in enumerate(shape):
            if not isinstance(dim, str):
                continue
            value = int(feed[inp.name].shape[axis])
            if dim in point and point[dim] != value:
                raise DataError(
                    f"dim {dim!r} is {value} here but {point[dim]} in input {where[dim]!r}; "
                    "inputs that share a dim must agree",
                    sample=sample,
                    field=inp.name,
                )
            point.setdefault(dim, value)
            where.setdefault(dim, inp.name)
    return point


def _check_batch_axis(feed: Feed, size: int, batch: str) -> None:
    for name, array in feed.items():
        if array.shape[0] != size:
            first = next(iter(feed))
            raise DataError(
                f"batch axis is {array.shape[0]}, but {size} in input {first!r}", sample=batch, field=name
            )


def check_labels(labels: Any, spec: ModelSpec, names: tuple[str, ...], *, batch: str) -> np.ndarray | None:
    """``labels`` as int64 [n] ids into the first output's labels, or None; errors name the sample."""
    if labels is None:
        return None
    array = np.asarray(labels)
    if array.dtype.kind not in "iu" or array.shape != (len(names),):
        raise DataError(
            f"labels must be {len(names)} integer class ids, got {array.dtype} {list(array.shape)}",
            sample=batch,
            field=LABEL,
        )
    count = label_count(spec)
    for j, value in enumerate(array.tolist()):
        if value < 0 or (count is not None and value >= count):
            raise DataError(_label_range_text(value, count), sample=names[j], field=LABEL)
    return array.astype(np.int64)


def parse_label(value: Any, spec: ModelSpec, *, sample: str) -> int:
    """A label written by a user (a label name of the first output, or an integer id) as an id."""
    labels = spec.outputs[0].labels
    if isinstance(value, str):
        text = value.strip()
        if labels is not None and text in labels:
            return labels.index(text)
        try:
            value = int(text)
        except ValueError:
            hint = f"labels: {', '.join(labels)}" if labels else "the spec's first output has no labels"
            raise DataError(
                f"{text!r} is neither a label name nor an integer id", sample=sample, field=LABEL, hint=hint
            ) from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataError(f"expected a label name or an integer id, got {value!r}", sample=sample, field=LABEL)
    count = label_count(spec)
    if value < 0 or (count is not None and value >= count) or value > _MAX_LABEL:
        raise DataError(_label_range_text(value, count), sample=sample, field=LABEL)
    return value


_MAX_LABEL = 2**63 - 1  # labels are stored as int64


def label_count(spec: ModelSpec) -> int | None:
    """How many classes the spec's first output names, or None when it names none."""
    labels = spec.outputs[0].labels
    return None if labels is None else len(labels)


def _label_range_text(value: int, count: int | None) -> str:
    bound = f"[0, {count - 1}]" if count is not None else ">= 0" if value < 0 else f"at most {_MAX_LABEL}"
    return f"class id {value} is out of range, expected {bound}"


def _inputs_hint(spec: ModelSpec) -> str:
    return f"spec inputs: {', '.join(spec.input_names)}"


def batch_limit(spec: ModelSpec, batch_size: int) -> int:
    """The largest batch to build: ``batch_size``, within the spec's batch dim (axis 0)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dim = spec.inputs[0].shape[0]
    if isinstance(dim, int):
        return dim
    return min(batch_size, spec.dims[dim].max)


def padded_inputs(spec: ModelSpec) -> dict[str, int]:
    """Inputs whose last axis may be padded with their ``pad`` id to group samples: input -> pad.

    Only integer inputs with a pad id whose last dim is named and used by no other axis.
    """
    uses: dict[str, int] = {}
    for inp in spec.inputs:
        for dim in inp.dim_names:
            uses[dim] = uses.get(dim, 0) + 1
    out: dict[str, int] = {}
    for inp in spec.inputs:
        pad = (inp.preprocess or {}).get("pad")
        last = inp.shape[-1]
        if pad is not None and inp.dtype in INT_DTYPES and isinstance(last, str) and uses[last] == 1:
            out[inp.name] = int(pad)
    return out


class ShapeCoverage:
    """The smallest and largest value seen for every named dim, over the feeds added."""

    def __init__(self, spec: ModelSpec) -> None:
        self._spec = spec
        self._seen: dict[str, tuple[int, int]] = {}

    def add(self, feed: Mapping[str, np.ndarray]) -> None:
        for inp in self._spec.inputs:
            for axis, dim in enumerate(inp.shape):
                if isinstance(dim, str) and inp.name in feed:
                    value = int(feed[inp.name].shape[axis])
                    low, high = self._seen.get(dim, (value, value))
                    self._seen[dim] = (min(low, value), max(high, value))

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{dim: {"min": ..., "max": ...}}`` in the spec's dim order, for manifests."""
        return {
            d: {"min": self._seen[d][0], "max": self._seen[d][1]} for d in self._spec.dims if d in self._seen
        }


def shape_coverage(source: FeedSource, spec: ModelSpec) -> dict[str, dict[str, int]]:
    """One pass over ``source``: the min and max of every named dim its batches use."""
    coverage = ShapeCoverage(spec)
    for batch in source.batches():
        coverage.add(batch.feed)
    return coverage.as_dict()


def require_batches(batches: Iterable[Batch], description: str) -> Iterator[Batch]:
    """``batches`` as they come; a source that gives none is an error."""
    empty = True
    for batch in batches:
        empty = False
        yield batch
    if empty:
        raise DataError(f"{description} gives no samples")


def take(batches: Iterable[Batch], samples: int | None) -> Iterator[Batch]:
    """The first ``samples`` samples of ``batches`` (all with None); reads no batch past them."""
    left = samples
    for batch in batches:
        if left is None:
            yield batch
            continue
        yield batch if batch.size <= left else head(batch, left)
        left -= min(batch.size, left)
        if left <= 0:
            return


def head(batch: Batch, count: int) -> Batch:
    """The first ``count`` samples of ``batch``."""
    labels = None if batch.labels is None else batch.labels[:count]
    return Batch({k: v[:count] for k, v in batch.feed.items()}, labels, batch.names[:count])


def hash_file(digest: Any, path: Path) -> None:
    """Feed the bytes of ``path`` into ``digest`` in chunks (memory stays flat)."""
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)


def hash_batch(digest: Any, batch: Batch) -> None:
    """Feed a batch's arrays (name, dtype, shape, bytes) and labels into ``digest``."""
    for name, array in batch.feed.items():
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    if batch.labels is not None:
        digest.update(b"labels")
        digest.update(batch.labels.tobytes())


def new_digest(kind: str) -> Any:
    """A sha256 started with the source kind, so that different kinds never collide."""
    return hashlib.sha256(f"mmexport-data:{kind}\n".encode())
