"""Feeds for fuzzing ``Session.run``: hypothesis strategies and an oracle written apart from
``mmexport.runtime.validation`` (which inputs a feed breaks, if any).

Arrays above ``ELEMENTS`` are broadcast views of one element, so that huge and out-of-range
shapes cost no memory here: the runtime must refuse them before it allocates anything.
"""

from __future__ import annotations

import math
import types
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from mmexport.core.memory import MAX_FEED_BYTES
from mmexport.core.spec import ModelSpec

ELEMENTS = 200_000  # per array; above this an array is a broadcast view
VALID_BUDGET = 1_500_000  # elements of a whole valid feed (keeps the default model's runs short)
DTYPES = [
    "float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "uint16", "uint32",
    "uint64", "bool", "complex64", "object", "<U3", "datetime64[s]", ">f4", ">i8",
]  # fmt: skip
LAYOUTS = ["c", "fortran", "strided", "reversed", "broadcast", "readonly", "unaligned", "masked", "matrix"]
WRONG_VALUES = ["list", "tuple", "None", "scalar", "string", "torch", "0d"]
CONTAINERS = ["dict", "dict", "dict", "dict", "subclass", "ordered", "proxy", "custom-mapping"]
BAD_CONTAINERS = ["list", "tuple", "None", "scalar", "string", "torch", "set", "array"]


@dataclass
class Case:
    """One drawn feed and how it was made (shown by hypothesis when a case fails)."""

    feed: Any
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Case({'; '.join(self.notes)})"


class _Mapping(Mapping[Any, Any]):
    def __init__(self, data: dict[Any, Any]) -> None:
        self._data = data

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Any:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class _DictSubclass(dict):  # type: ignore[type-arg]
    pass


def _inside(low: int, high: int) -> st.SearchStrategy[int]:
    """Sizes in [low, high]: the corners, and small ones above the min."""
    return st.one_of(st.just(low), st.just(high), st.integers(low, min(high, low + 40)))


def _outside(low: int, high: int) -> st.SearchStrategy[int]:
    """Sizes off [low, high]: one off, zero, far off, huge (up to 10**12)."""
    choices = [
        st.just(low - 1), st.just(high + 1), st.just(0), st.integers(high + 1, high + 1000),
        st.integers(10**6, 10**12),
    ]  # fmt: skip
    return st.one_of(*choices).map(lambda v: max(v, 0))


@st.composite
def cases(draw: st.DrawFn, spec: ModelSpec, value_ranges: bool = True) -> Case:
    """A feed for ``spec``: mostly plausible, often broken in one or a few ways."""
    notes: list[str] = []
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sizes = {d.name: draw(_inside(d.min, d.max), label=d.name) for d in spec.dims.values()}
    off = draw(st.sampled_from([0, 0, 0, 1, 1, 2]))  # dims pushed out of range: half the cases none
    for name in draw(st.permutations(sorted(sizes)))[:off]:
        sizes[name] = draw(_outside(spec.dims[name].min, spec.dims[name].max), label=f"{name} (outside)")
    _fit_budget(spec, sizes)
    notes.append("dims " + ", ".join(f"{k}={v}" for k, v in sizes.items()))
    broken = draw(st.integers(0, 2)) == 0  # a third of the cases break an input's dtype, rank, ...
    feed: dict[Any, Any] = {}
    for inp in spec.inputs:
        shape = [sizes[d] if isinstance(d, str) else d for d in inp.shape]
        dtype = inp.dtype
        layout = "c"
        value_range = inp.range if value_ranges else None
        if broken and draw(st.booleans()):
            what = draw(
                st.sampled_from(["dtype", "rank", "fixed", "shared", "layout", "value", "nan", "int-values"])
            )
            notes.append(f"{inp.name}: {what}")
            if what == "dtype":
                dtype = draw(st.sampled_from(DTYPES))
            elif what == "rank":
                shape = shape[:-1] if draw(st.booleans()) and shape else [*shape, 2]
            elif what == "fixed":
                fixed = [a for a, d in enumerate(inp.shape) if isinstance(d, int)]
                if fixed:
                    shape[fixed[0]] += draw(st.sampled_from([-1, 1, 5]))
            elif what == "shared":
                named = [a for a, d in enumerate(inp.shape) if isinstance(d, str)]
                if named:
                    shape[named[0]] += 1
            elif what == "layout":
                layout = draw(st.sampled_from(LAYOUTS))
            elif what == "value":
                feed[inp.name] = _wrong_value(draw(st.sampled_from(WRONG_VALUES)), rng)
                continue
            elif what == "nan":
                layout = "nan"
            elif what == "int-values":  # outside the spec's range: not checked by the runtime
                value_range = (-5, 1000)
        elif draw(st.integers(0, 3)) == 0:  # valid, but not a plain C-contiguous array
            layout = draw(st.sampled_from(["fortran", "strided", "reversed", "broadcast", "readonly", "nan"]))
            notes.append(f"{inp.name}: {layout}")
        feed[inp.name] = _array(shape, dtype, layout, value_range, rng)
    return Case(_container(draw, feed, notes), notes)


def _fit_budget(spec: ModelSpec, sizes: dict[str, int]) -> None:
    """Shrink in-range dims to their min until a valid feed would be small enough to run quickly."""

    def total() -> int:
        return sum(math.prod(sizes[d] if isinstance(d, str) else d for d in i.shape) for i in spec.inputs)

    if MAX_FEED_BYTES is not None and total() > MAX_FEED_BYTES:
        return  # refused for its size whatever the dtypes: nothing will be allocated
    in_range = [d for d in spec.dims.values() if d.min <= sizes[d.name] <= d.max]
    for dim in sorted(in_range, key=lambda d: -sizes[d.name]):
        if total() <= VALID_BUDGET:
            return
        sizes[dim.name] = dim.min


def _array(shape: list[int], dtype: str, layout: str, value_range: Any, rng: np.random.Generator) -> Any:
    dt = np.dtype(dtype)
    while math.prod(d for d in shape if d) > 2**56:  # beyond what numpy can describe, even as a view
        shape[shape.index(max(shape))] = 1000
    count = math.prod(shape)
    if count > ELEMENTS or layout == "broadcast":
        one = _values((1,), dt, value_range, rng)
        return np.broadcast_to(one.reshape((1,) * len(shape)) if shape else one[0], shape)
    if layout == "strided":
        big = _values([2 * s for s in shape] or [1], dt, value_range, rng)
        return big[tuple(slice(None, None, 2) for _ in shape)] if shape else big[0]
    values = _values(shape, dt, value_range, rng)
    if layout == "fortran":
        return np.asfortranarray(values)
    if layout == "reversed" and shape:
        return np.ascontiguousarray(values[::-1])[::-1]
    if layout == "readonly":
        values.flags.writeable = False
    if layout == "unaligned" and dt.itemsize > 1 and values.size:
        raw = np.zeros(values.nbytes + 1, np.uint8)
        unaligned = raw[1:].view(dt).reshape(values.shape)
        unaligned[...] = values
        return unaligned
    if layout == "masked":
        return np.ma.masked_array(values, mask=np.zeros(values.shape, bool))
    if layout == "matrix" and values.ndim == 2:
        return np.asmatrix(values)
    if layout == "nan" and dt.kind == "f" and values.size:
        flat = values.reshape(-1)
        flat[rng.integers(0, flat.size, max(1, flat.size // 5))] = rng.choice([np.nan, np.inf, -np.inf])
    return values


def _values(shape: Any, dt: np.dtype, value_range: Any, rng: np.random.Generator) -> np.ndarray:
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    if dt.kind in "iu":
        low, high = value_range if value_range is not None else (0, 10)
        info = np.iinfo(dt)
        return rng.integers(max(low, info.min), min(high, info.max + 1), shape).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j).astype(dt)
    if dt.kind == "M":
        return np.zeros(shape, dt)
    if dt.kind == "U":
        return np.full(shape, "ab", dt)
    return np.full(shape, None, object)


def _wrong_value(kind: str, rng: np.random.Generator) -> Any:
    values = rng.standard_normal((2, 3)).astype(np.float32)
    if kind == "torch":
        import torch

        return torch.from_numpy(values)
    return {
        "list": values.tolist(),
        "tuple": tuple(values.reshape(-1).tolist()),
        "None": None,
        "scalar": np.float32(1.0),
        "string": "image.png",
        "0d": np.array(1.0, np.float32),
    }[kind]


def _container(draw: st.DrawFn, feed: dict[Any, Any], notes: list[str]) -> Any:
    if draw(st.integers(0, 9)) == 0:
        kind = draw(st.sampled_from(BAD_CONTAINERS))
        notes.append(f"container {kind}")
        if kind == "torch":
            import torch

            return torch.zeros(2)
        values = list(feed.values())
        return {
            "list": values,
            "tuple": tuple(values),
            "None": None,
            "scalar": 3.0,
            "string": "feeds.npz",
            "set": set(feed),
            "array": np.zeros(3),
        }[kind]
    keys = draw(st.sampled_from(["same"] * 9 + ["missing", "extra", "extra-odd"]))
    if keys == "missing":
        feed.pop(draw(st.sampled_from(sorted(feed))))
    elif keys == "extra":
        feed["unexpected"] = np.zeros(2, np.float32)
    elif keys == "extra-odd":
        feed[draw(st.sampled_from([1, None, b"image", ("a",)]))] = np.zeros(2, np.float32)
    kind = draw(st.sampled_from(CONTAINERS))
    if keys != "same" or kind != "dict":
        notes.append(f"keys {keys}, container {kind}")
    if kind == "subclass":
        return _DictSubclass(feed)
    if kind == "ordered":
        return OrderedDict(feed)
    if kind == "proxy":
        return types.MappingProxyType(feed)
    if kind == "custom-mapping":
        return _Mapping(feed)
    return feed


def broken_inputs(spec: ModelSpec, feed: Any) -> set[str | None] | None:
    """None when ``feed`` is valid for ``spec``; else the names an error may blame (None: the feed
    as a whole). Written from the documented rules, not from the validator's code."""
    if not isinstance(feed, Mapping):
        return {None}
    names = spec.input_names
    keys = list(feed.keys())
    if set(keys) != set(names) or len(keys) != len(names):
        return {n for n in names if n not in feed} | {str(k) for k in keys if k not in names}
    bad: set[str | None] = set()
    dims: dict[str, set[int]] = {}
    users: dict[str, set[str]] = {}
    total = 0
    for inp in spec.inputs:
        value = feed[inp.name]
        if not isinstance(value, np.ndarray) or isinstance(value, np.ma.MaskedArray):
            bad.add(inp.name)
            continue
        want = np.dtype(inp.dtype)
        kinds = {value.dtype.kind, want.kind}
        same_family = kinds <= {"i", "u"} or kinds == {"f"}
        ok_dtype = value.dtype == want or (same_family and np.can_cast(value.dtype, want, "safe"))
        if not ok_dtype or value.ndim != len(inp.shape):
            bad.add(inp.name)
            continue
        for axis, d in enumerate(inp.shape):
            size = value.shape[axis]
            if isinstance(d, int) and size != d:
                bad.add(inp.name)
            if isinstance(d, str):
                if not spec.dims[d].min <= size <= spec.dims[d].max:
                    bad.add(inp.name)
                dims.setdefault(d, set()).add(size)
                users.setdefault(d, set()).add(inp.name)
        total += value.size * want.itemsize
    for d, seen in dims.items():
        if len(seen) > 1:
            bad |= users[d]
    if MAX_FEED_BYTES is not None and total > MAX_FEED_BYTES:
        bad |= set(names)
    return bad or None


def reference_feed(spec: ModelSpec, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What onnxruntime is given when called directly: contiguous arrays of the spec's dtypes."""
    return {i.name: np.ascontiguousarray(np.asarray(feed[i.name]).astype(i.dtype)) for i in spec.inputs}
