"""Feed validation against a ModelSpec, compiled once per session so that each call stays cheap.

Checked before any backend sees the data, in this order, each failure an ``InputError`` that
names the input (and the dim, expected and actual value):

- feeds must be a mapping of input name -> ``numpy.ndarray`` (lists, scalars and framework
  tensors are refused: convert them with ``np.asarray`` yourself, knowingly);
- every spec input present, no other name;
- dtype equal to the spec's, or cast losslessly *within its kind*: a narrower signed or unsigned
  integer to a wider integer (``int32 -> int64``, ``uint8 -> int32``) and a narrower float to a
  wider one (``float16 -> float32``). Anything else is refused, notably float -> int, int -> float
  (``uint8`` pixels are not normalized floats), wider -> narrower, and bool <-> anything;
- rank, every fixed axis, every named dim within ``[min, max]``, and a named dim equal in every
  input that uses it (one ``batch`` for all modalities).

Values are not read (integer ranges such as vocabulary size are not checked: that would cost a
pass over the data on every call).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mmexport.errors import InputError
from mmexport.spec import InputSpec, ModelSpec

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

    __slots__ = ("dtype", "fixed", "name", "named", "rank", "shape")

    def __init__(self, spec: InputSpec, model: ModelSpec) -> None:
        self.name = spec.name
        self.dtype = np.dtype(spec.dtype)
        self.rank = len(spec.shape)
        self.shape = spec.shape
        self.fixed = tuple((a, d) for a, d in enumerate(spec.shape) if isinstance(d, int))
        dims = model.dims
        self.named = tuple(
            (a, d, dims[d].min, dims[d].max) for a, d in enumerate(spec.shape) if isinstance(d, str)
        )


class FeedValidator:
    """``validator(feeds)`` returns feeds fit for the backend (cast where allowed) or raises."""

    def __init__(self, spec: ModelSpec) -> None:
        self._inputs = tuple(_CompiledInput(i, spec) for i in spec.inputs)
        self._names = frozenset(spec.input_names)
        self._order = ", ".join(spec.input_names)

    def __call__(self, feeds: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
        if type(feeds) is not dict and not isinstance(feeds, Mapping):  # dict: skip the ABC check
            raise InputError(
                None, f"feeds must be a dict of input name -> numpy array, got {type(feeds).__name__}"
            )
        if feeds.keys() != self._names:
            self._names_error(feeds)
        seen: dict[str, tuple[int, str]] = {}
        out: dict[str, np.ndarray] | None = None
        for c in self._inputs:
            value = feeds[c.name]
            if not isinstance(value, np.ndarray):
                raise InputError(
                    c.name,
                    f"must be a numpy.ndarray, got {type(value).__module__}.{type(value).__qualname__}",
                    expected="numpy.ndarray",
                    actual=type(value).__name__,
                    hint="convert it with np.asarray(...)",
                )
            if value.dtype is not c.dtype and value.dtype != c.dtype:  # builtin dtypes are singletons
                value = _cast(c, value)
                out = dict(feeds) if out is None else out
                out[c.name] = value
            check_shape(c, value.shape, seen)
        return feeds if out is None else out

    def check_meta(self, shapes: Mapping[str, tuple[int, ...]], dtypes: Mapping[str, np.dtype]) -> None:
        """The same checks for data that is not a host array (device buffers): shape and exact dtype."""
        if shapes.keys() != self._names:
            self._names_error(shapes)
        seen: dict[str, tuple[int, str]] = {}
        for c in self._inputs:
            if dtypes[c.name] != c.dtype:
                raise InputError(
                    c.name,
                    f"dtype must be {c.dtype}, got {dtypes[c.name]} (device data is never cast)",
                    expected=str(c.dtype),
                    actual=str(dtypes[c.name]),
                )
            check_shape(c, tuple(shapes[c.name]), seen)

    def _names_error(self, feeds: Mapping[str, Any]) -> None:
        for c in self._inputs:
            if c.name not in feeds:
                raise InputError(c.name, f"is missing (the model takes {self._order})")
        unknown = sorted(str(k) for k in feeds if k not in self._names)
        raise InputError(unknown[0], f"is not an input of this model (it takes {self._order})")


def _cast(c: _CompiledInput, value: np.ndarray) -> np.ndarray:
    if can_cast_losslessly(value.dtype, c.dtype):
        return value.astype(c.dtype)
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
