"""Feed validation against a ModelSpec, compiled once per session so that each call stays cheap.

Checked before any backend sees the data, in this order, each failure an ``InputError`` that
names the input (and the dim, expected and actual value):

- feeds must be a mapping of input name -> ``numpy.ndarray`` (lists, scalars and framework
  tensors are refused: convert them with ``np.asarray`` yourself, knowingly);
- every spec input present, no other name;
- masked arrays are refused too (the backend would ignore the mask);
- dtype equal to the spec's, or cast losslessly *within its kind*: a narrower signed or unsigned
  integer to a wider integer (``int32 -> int64``, ``uint8 -> int32``) and a narrower float to a
  wider one (``float16 -> float32``). Anything else is refused, notably float -> int, int -> float
  (``uint8`` pixels are not normalized floats), wider -> narrower, and bool <-> anything;
- rank, every fixed axis, every named dim within ``[min, max]``, and a named dim equal in every
  input that uses it (one ``batch`` for all modalities);
- the feeds' size at the spec's dtypes within this machine's physical memory (what bounds dims
  when the spec comes from a graph without ranges). Casts are made only after all of this, so a
  huge (e.g. broadcast) array is refused before anything is allocated.

Values are not read: NaN and inf pass through to the model as they are (integer ranges such as
vocabulary size are not checked either: that would cost a pass over the data on every call).
``non_finite_inputs`` is that pass, for callers that want it (``mmexport run`` warns with it):
an INT8 model can turn NaN into a confident answer, so its outputs need not show them.
A mapping other than a plain dict is read once, into a new dict: what was checked is what runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mmexport.core.errors import InputError
from mmexport.core.memory import MAX_FEED_BYTES
from mmexport.core.spec import InputSpec, ModelSpec

_KIND_FAMILY = {"i": "int", "u": "int", "f": "float", "b": "bool"}


def can_cast_losslessly(actual: np.dtype, expected: np.dtype) -> bool:
    """Whether ``actual`` values may be cast to ``expected`` without changing what they mean."""
    family = _KIND_FAMILY.get(actual.kind)
    return (
        family is not None
        and family == _KIND_FAMILY.get(expected.kind)
        and np.can_cast(actual, expected, casting="safe")
    )


class _CompiledInput:
    """One input's checks, precomputed: dtype, rank, fixed axes, named axes with bounds."""

    __slots__ = ("dtype", "fixed", "itemsize", "max_bytes", "name", "named", "rank", "shape")

    def __init__(self, spec: InputSpec, model: ModelSpec) -> None:
        self.name = spec.name
        self.dtype = np.dtype(spec.dtype)
        self.itemsize = self.dtype.itemsize
        self.rank = len(spec.shape)
        self.shape = spec.shape
        self.fixed = tuple((a, d) for a, d in enumerate(spec.shape) if isinstance(d, int))
        dims = model.dims
        self.named = tuple(
            (a, d, dims[d].min, dims[d].max) for a, d in enumerate(spec.shape) if isinstance(d, str)
        )
        self.max_bytes = self.itemsize * math.prod(
            d if isinstance(d, int) else dims[d].max for d in spec.shape
        )


ACCEPTED_SHAPES = 64
"""Sets of input shapes a validator remembers as passing, for its fast path."""


class FeedValidator:
    """``validator(feeds)`` returns feeds fit for the backend (cast where allowed) or raises.

    Fast path: a plain dict of exactly the spec's names, each a plain ``numpy.ndarray`` of the
    spec's dtype, whose shapes all passed before (the last ``ACCEPTED_SHAPES`` sets) is passed on
    at once: every check but the array type and dtype depends on the shapes alone.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self._inputs = tuple(_CompiledInput(i, spec) for i in spec.inputs)
        self._fast = tuple((c.name, c.dtype) for c in self._inputs)
        self._count = len(self._inputs)
        self._accepted: dict[tuple[tuple[int, ...], ...], None] = {}
        self._accepted_meta: dict[tuple[tuple[int, ...], ...], None] = {}  # device data: no size check
        self._names = frozenset(spec.input_names)
        self._order = ", ".join(spec.input_names)
        largest = sum(c.max_bytes for c in self._inputs)  # the dims' max everywhere
        self._limit = MAX_FEED_BYTES if MAX_FEED_BYTES is not None and largest > MAX_FEED_BYTES else None

    def __call__(self, feeds: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
        if type(feeds) is dict and len(feeds) == self._count:
            shapes = []
            for name, dtype in self._fast:
                value = feeds.get(name)
                if type(value) is not np.ndarray or value.dtype is not dtype:
                    break
                shapes.append(value.shape)
            else:
                if tuple(shapes) in self._accepted:
                    return feeds
        return self._check(feeds)

    def _check(self, feeds: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
        """Every check, in order; a plain dict that passes uncast has its shapes remembered."""
        if type(feeds) is not dict and not isinstance(feeds, Mapping):  # dict: skip the ABC check
            raise InputError(
                None, f"feeds must be a dict of input name -> numpy array, got {type(feeds).__name__}"
            )
        if feeds.keys() != self._names:
            self._names_error(feeds)
        seen: dict[str, tuple[int, str]] = {}
        # a plain dict is passed on as it is (unless a cast replaces a value); any other mapping
        # is read once, into a new dict, so that a mapping cannot give other arrays to the backend
        out: dict[str, np.ndarray] | None = None if type(feeds) is dict else {}
        size, limit = 0, self._limit  # limit: None when the spec's ranges already bound the size
        for c in self._inputs:
            value = feeds[c.name]
            if type(value) is not np.ndarray:
                _check_array(c, value)
            cast = value.dtype is not c.dtype and value.dtype != c.dtype  # builtin dtypes are singletons
            if cast:
                _check_cast(c, value)
            check_shape(c, value.shape, seen)
            if limit is not None:
                size += value.size * c.itemsize
                if size > limit:
                    _too_large(c, value, size, limit)
            if cast:  # only now, when the shape is known to be sane: a cast allocates
                value = value.astype(c.dtype)
                out = dict(feeds) if out is None else out
            if out is not None:
                out[c.name] = value
        if out is None:
            self._remember(tuple(feeds[c.name].shape for c in self._inputs))
            return feeds
        return out

    def _remember(self, shapes: tuple[tuple[int, ...], ...]) -> None:
        accepted = self._accepted
        if len(accepted) >= ACCEPTED_SHAPES:
            accepted.clear()  # varying shapes: start over rather than keep an unbounded record
        accepted[shapes] = None

    def check_meta(self, shapes: Mapping[str, tuple[int, ...]], dtypes: Mapping[str, np.dtype]) -> None:
        """The same checks for data that is not a host array (device buffers): shape and exact dtype."""
        if shapes.keys() != self._names:
            self._names_error(shapes)
        for c in self._inputs:
            if dtypes[c.name] != c.dtype:
                raise InputError(
                    c.name,
                    f"dtype must be {c.dtype}, got {dtypes[c.name]} (device data is never cast)",
                    expected=str(c.dtype),
                    actual=str(dtypes[c.name]),
                )
        key = tuple(tuple(shapes[c.name]) for c in self._inputs)
        if key in self._accepted_meta:  # every shape check depends on the shapes alone
            return
        seen: dict[str, tuple[int, str]] = {}
        for c, shape in zip(self._inputs, key, strict=True):
            check_shape(c, shape, seen)
        if len(self._accepted_meta) >= ACCEPTED_SHAPES:
            self._accepted_meta.clear()
        self._accepted_meta[key] = None

    def _names_error(self, feeds: Mapping[str, Any]) -> None:
        for c in self._inputs:
            if c.name not in feeds:
                raise InputError(c.name, f"is missing (the model takes {self._order})")
        unknown = sorted(str(k) for k in feeds if k not in self._names)
        raise InputError(unknown[0], f"is not an input of this model (it takes {self._order})")


def _check_array(c: _CompiledInput, value: Any) -> None:
    """Refuse what is not a numpy array, and masked arrays (their mask would be dropped)."""
    if not isinstance(value, np.ndarray):
        raise InputError(
            c.name,
            f"must be a numpy.ndarray, got {type(value).__module__}.{type(value).__qualname__}",
            expected="numpy.ndarray",
            actual=type(value).__name__,
            hint="convert it with np.asarray(...)",
        )
    if isinstance(value, np.ma.MaskedArray):
        raise InputError(
            c.name,
            "is a masked array; the model would see the values under the mask",
            expected="numpy.ndarray",
            actual=type(value).__name__,
            hint="fill the masked values knowingly: np.ma.filled(array, value)",
        )


def _too_large(c: _CompiledInput, value: np.ndarray, size: int, limit: int) -> None:
    raise InputError(
        c.name,
        f"shape {list(value.shape)} makes the feeds {size / 2**30:.3g} GiB as {c.dtype}, more than this "
        f"machine's memory ({limit / 2**30:.3g} GiB); refused before allocating",
        expected=limit,
        actual=size,
    )


def _check_cast(c: _CompiledInput, value: np.ndarray) -> None:
    if can_cast_losslessly(value.dtype, c.dtype):
        return
    raise InputError(
        c.name,
        f"dtype must be {c.dtype}, got {value.dtype}; not cast, as it could change values",
        expected=str(c.dtype),
        actual=str(value.dtype),
        hint="only lossless casts within a kind are made, e.g. int32 -> int64, float16 -> float32",
    )


def check_shape(c: _CompiledInput, shape: tuple[int, ...], seen: dict[str, tuple[int, str]]) -> None:
    """Rank, fixed axes, named dims in range and equal to the same dim in earlier inputs."""
    if len(shape) != c.rank:
        raise InputError(
            c.name,
            f"rank must be {c.rank} {_shape_text(c.shape)}, got {len(shape)} {list(shape)}",
            expected=c.rank,
            actual=len(shape),
        )
    for axis, size in c.fixed:
        if shape[axis] != size:
            raise InputError(
                c.name,
                f"axis {axis} must be {size} {_shape_text(c.shape)}, got {shape[axis]}",
                dim=f"axis {axis}",
                axis=axis,
                expected=size,
                actual=shape[axis],
            )
    for axis, dim, low, high in c.named:
        size = shape[axis]
        if size < low or size > high:
            raise InputError(
                c.name,
                f"dim {dim!r} (axis {axis}) must be in [{low}, {high}], got {size}",
                dim=dim,
                axis=axis,
                expected=(low, high),
                actual=size,
            )
        first = seen.setdefault(dim, (size, c.name))
        if first[0] != size:
            raise InputError(
                c.name,
                f"dim {dim!r} (axis {axis}) is {size} but input {first[1]!r} has {first[0]}; "
                "inputs sharing a dim must agree",
                dim=dim,
                axis=axis,
                expected=first[0],
                actual=size,
            )


def _shape_text(shape: tuple[int | str, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def non_finite_inputs(feeds: Mapping[str, Any]) -> dict[str, int]:
    """How many NaN and infinite values each floating-point feed holds (inputs with none are left
    out). One pass over the data: opt-in, never made by ``Session.run``."""
    counts = {}
    for name, value in feeds.items():
        array = np.asarray(value)
        if array.dtype.kind in "fc":
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            if bad:
                counts[name] = bad
    return counts
