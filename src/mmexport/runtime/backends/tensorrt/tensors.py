"""An engine's I/O tensors by name, and the optimization profile that fits a set of feed shapes.

Uses TensorRT's name-based API only (``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``,
``get_tensor_dtype``, ``get_tensor_shape``, ``get_tensor_profile_shape``): the binding-index API
was removed in TensorRT 10.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from mmexport.core.errors import ArtifactError, InputError
from mmexport.runtime.backends.tensorrt.cuda import BF16_HINT, UnsupportedDtype, numpy_dtype

# TensorRT DataType member name -> numpy dtype name (BF16 needs the ml_dtypes package).
NUMPY_TYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
    "BF16": "bfloat16",
}

Range = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # min, opt, max


@dataclass(frozen=True)
class EngineTensor:
    """One I/O tensor: name, direction, numpy dtype, declared shape (-1: dynamic), ranges per profile."""

    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]
    ranges: tuple[Range, ...] = ()


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", str(value).rsplit(".", 1)[-1]))


def read_tensors(trt: ModuleType, engine: Any, path: Path) -> list[EngineTensor]:
    """Every I/O tensor of ``engine`` in its own order; refuses types numpy cannot hold and
    shape tensors (inputs that hold shapes, read from host memory; outputs computed from them)."""
    tensors = []
    profiles = int(engine.num_optimization_profiles)
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        if engine.is_shape_inference_io(name):
            role = "input" if is_input else "output"
            raise ArtifactError(
                str(path),
                f"{role} {name!r} is a shape tensor (its values feed shape calculations and live in host "
                "memory), which mmexport's runner does not feed",
                hint="export the model with that value folded into a constant, or run it with trtexec",
            )
        kind = _enum_name(engine.get_tensor_dtype(name))
        if kind not in NUMPY_TYPES:
            raise ArtifactError(
                str(path), f"tensor {name!r} has TensorRT type {kind}, which mmexport cannot feed"
            )
        try:
            dtype = numpy_dtype(NUMPY_TYPES[kind])
        except UnsupportedDtype as e:
            raise ArtifactError(str(path), f"tensor {name!r} is {e}", hint=BF16_HINT) from None
        ranges: tuple[Range, ...] = ()
        if is_input:
            ranges = tuple(_range(engine.get_tensor_profile_shape(name, p)) for p in range(profiles))
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        tensors.append(EngineTensor(name, is_input, dtype, shape, ranges))
    return tensors


def _range(shapes: Sequence[Any]) -> Range:
    low, opt, high = (tuple(int(d) for d in s) for s in shapes)
    return low, opt, high


def select_profile(inputs: Sequence[EngineTensor], shapes: Mapping[str, tuple[int, ...]]) -> int:
    """The first optimization profile whose min..max ranges contain every feed shape."""
    count = len(inputs[0].ranges) if inputs else 1
    for profile in range(count):
        if all(_fits(t.ranges[profile], shapes[t.name]) for t in inputs):
            return profile
    described = "; ".join(
        f"profile {p}: " + ", ".join(f"{t.name} {_x(t.ranges[p][0])}..{_x(t.ranges[p][2])}" for t in inputs)
        for p in range(count)
    )
    given = ", ".join(f"{name} {_x(shape)}" for name, shape in shapes.items())
    raise InputError(
        None,
        f"no optimization profile of the engine takes {given} ({described})",
        hint="rebuild with a profile that covers these shapes (mmexport build --profile)",
    )


def _fits(bounds: Range, shape: tuple[int, ...]) -> bool:
    low, _opt, high = bounds
    return len(shape) == len(low) and all(a <= s <= b for a, s, b in zip(low, shape, high, strict=True))


def _x(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)
