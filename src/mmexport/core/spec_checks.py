"""The checks a ModelSpec passes on construction, whether it comes from a file or from code.

Kept apart from the dataclasses so that ``spec.py`` reads as the data model; errors name the entry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mmexport.core.errors import SpecError
from mmexport.core.memory import MAX_FEED_BYTES
from mmexport.core.preprocess_spec import validate_preprocess
from mmexport.core.spec_schema import DTYPES, INT_DTYPES, MODALITIES, is_int

MAX_DIM = 2**63 - 1
"""The largest size of one axis in ONNX, numpy and TensorRT shapes (int64)."""

if TYPE_CHECKING:
    from mmexport.core.spec import DimSpec, InputSpec, ModelSpec


def validate_spec(spec: ModelSpec) -> None:
    """Checks across fields, run when a ModelSpec is constructed: dim ranges, unique names, every
    declared dim used, each input's modality, dtype, axes, range and preprocess."""
    for name, d in spec.dims.items():
        if not (d.min <= d.opt <= d.max):
            raise SpecError(
                f"needs min <= opt <= max, got min={d.min}, opt={d.opt}, max={d.max}",
                where=f"dim {name!r}",
            )
    _names([i.name for i in spec.inputs], "input")
    _names([o.name for o in spec.outputs], "output")
    clash = sorted(set(spec.input_names) & set(spec.output_names))
    if clash:
        raise SpecError(f"{clash[0]!r} is both an input and an output name")
    used: set[str] = set()
    for inp in spec.inputs:
        _validate_input(inp, spec.dims)
        used.update(inp.dim_names)
    for out in spec.outputs:
        unknown = [d for d in out.shape or () if isinstance(d, str) and d not in spec.dims]
        if unknown:
            raise SpecError(
                f"shape names dim {unknown[0]!r}, which 'dims' does not declare",
                where=f"output {out.name!r}",
                hint=f"declared: {', '.join(sorted(spec.dims)) or 'none'}",
            )
    _check_masks(spec)
    _check_sizes(spec)
    unused = sorted(set(spec.dims) - used)
    if unused:
        raise SpecError(
            "declared but used by no input", where=f"dim {unused[0]!r}", hint="a typo in a shape?"
        )


def input_bytes(inp: InputSpec, point: Mapping[str, int]) -> int:
    """Bytes of one sample array of ``inp`` at ``point`` (a value for each named dim)."""
    return np.dtype(inp.dtype).itemsize * math.prod(d if isinstance(d, int) else point[d] for d in inp.shape)


def _check_sizes(spec: ModelSpec) -> None:
    """Refuse dim values and fixed sizes beyond int64, which ONNX, numpy and TensorRT shapes use:
    they would fail deep inside with their own errors. (Larger than memory is a check of the
    stage that allocates: ``check_fits_memory``; specs of bare graphs have unbounded dims.)"""
    for name, d in spec.dims.items():
        if d.max > MAX_DIM:
            raise SpecError(f"max {d.max:.3g} is beyond what a 64-bit shape holds", where=f"dim {name!r}")
    for inp in spec.inputs:
        fixed = [d for d in inp.shape if isinstance(d, int) and d > MAX_DIM]
        if fixed:
            raise SpecError(
                f"size {fixed[0]:.3g} is beyond what a 64-bit shape holds", where=f"input {inp.name!r}"
            )


def check_fits_memory(spec: ModelSpec, point: Mapping[str, int], *, what: str) -> None:
    """Refuse, before anything is allocated, a feed at ``point`` larger than this machine's memory
    (``what`` names the stage that would allocate it, e.g. "the parity gate")."""
    sizes = [input_bytes(inp, point) for inp in spec.inputs]
    # Random values are drawn as float64/int64, then cast: one such draw is held beside the feed.
    items = [np.dtype(i.dtype).itemsize for i in spec.inputs]
    drawn = max((8 * n // item for n, item in zip(sizes, items, strict=True)), default=0)
    total = sum(sizes) + drawn
    if MAX_FEED_BYTES is not None and total > MAX_FEED_BYTES:
        shown = ", ".join(f"{k}={v}" for k, v in point.items())
        raise SpecError(
            f"{what} needs a feed of {total / 2**30:.3g} GiB at {shown}, more than this machine's "
            f"memory ({MAX_FEED_BYTES / 2**30:.3g} GiB)",
            hint="lower the dims' max",
        )


def _validate_input(inp: InputSpec, dims: Mapping[str, DimSpec]) -> None:
    where = f"input {inp.name!r}"
    if inp.modality not in MODALITIES:
        raise SpecError(
            f"unknown modality {inp.modality!r}",
            where=where,
            hint=f"one of {', '.join(MODALITIES)}",
        )
    if inp.dtype not in DTYPES:
        raise SpecError(f"unknown dtype {inp.dtype!r}", where=where, hint=f"one of {', '.join(DTYPES)}")
    for axis, d in enumerate(inp.shape):
        if isinstance(d, str):
            if d not in dims:
                declared = ", ".join(dims) or "none"
                raise SpecError(
                    f"axis {axis} uses dim {d!r}, which 'dims' does not declare",
                    where=where,
                    hint=f"declared: {declared}",
                )
        elif not is_int(d) or d < 1:
            raise SpecError(f"axis {axis} must be an integer >= 1 or a dim name, got {d!r}", where=where)
    if inp.preprocess is not None:
        validate_preprocess(inp.preprocess, dtype=inp.dtype, shape=inp.shape, where=where)
    if inp.range is not None:
        if inp.dtype not in INT_DTYPES:
            raise SpecError(f"range applies to integer inputs only, dtype is {inp.dtype}", where=where)
        low, high = inp.range
        if low >= high:
            raise SpecError(f"range [low, high) needs low < high, got [{low}, {high})", where=where)
        info = np.iinfo(inp.dtype)
        if low < info.min or high - 1 > info.max:
            raise SpecError(f"range [{low}, {high}) does not fit {inp.dtype}", where=where)


def _check_masks(spec: ModelSpec) -> None:
    """``mask_of`` names another input, of integer dtype, that is not a mask itself; the mask has
    that input's shape (the same ints and dim names) and an integer or bool dtype holding 0 and 1."""
    inputs = {i.name: i for i in spec.inputs}
    for inp in spec.inputs:
        if inp.mask_of is None:
            continue
        where = f"input {inp.name!r}"
        ids = inputs.get(inp.mask_of)
        if ids is None or ids is inp:
            others = ", ".join(n for n in inputs if n != inp.name) or "none"
            raise SpecError(
                f"mask_of names {inp.mask_of!r}, which is not another input of the spec",
                where=where,
                hint=f"inputs: {others}",
            )
        if ids.mask_of is not None:
            raise SpecError(f"mask_of names {ids.name!r}, which is a mask itself", where=where)
        if ids.dtype not in INT_DTYPES:
            raise SpecError(
                f"mask_of names {ids.name!r}, whose dtype is {ids.dtype}; token ids are integers",
                where=where,
            )
        if inp.dtype not in (*INT_DTYPES, "bool"):
            raise SpecError(f"a mask needs an integer or bool dtype, got {inp.dtype}", where=where)
        if tuple(inp.shape) != tuple(ids.shape) or not inp.shape:
            raise SpecError(
                f"a mask has the shape of its token input: {ids.name!r} is {list(ids.shape)}, "
                f"this mask is {list(inp.shape)}",
                where=where,
            )
        if inp.range is not None and not (inp.range[0] <= 0 and inp.range[1] >= 2):
            raise SpecError(
                f"a mask holds 0 and 1, its range [{inp.range[0]}, {inp.range[1]}) does not",
                where=where,
                hint="drop 'range' from the mask",
            )


def _names(names: list[str], what: str) -> None:
    """Names that are non-empty strings (ONNX and every stage look inputs and outputs up by
    name; "" means "no value" to onnxruntime) and each given once."""
    seen: set[str] = set()
    for n in names:
        if not isinstance(n, str) or not n:
            raise SpecError(f"{what} name must be a non-empty string, got {n!r}")
        if n in seen:
            raise SpecError(f"{what} name {n!r} appears twice")
        seen.add(n)


def check_call_kwargs(call_kwargs: Mapping[str, Any]) -> None:
    """``call_kwargs`` are constants written in JSON: names to strings, numbers, booleans or null."""
    for name, value in call_kwargs.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise SpecError(f"{name!r} is not a parameter name", where="call_kwargs")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise SpecError(
                f"{name!r} must be a string, number, boolean or null, got {type(value).__name__}",
                where="call_kwargs",
            )
