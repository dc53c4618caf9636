"""The real TensorRT for tests marked ``trt``: present, able to start, with cuda-python; else a skip."""

from __future__ import annotations

from types import ModuleType

import pytest


def real_tensorrt() -> ModuleType:
    """The installed TensorRT, able to start a builder; skips (with the reason) where it cannot."""
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed on this machine")
    try:
        trt.Builder(trt.Logger(trt.Logger.WARNING))
    except Exception as e:  # pybind11's TypeError (CUDA initialization failure) without a usable GPU
        pytest.skip(f"TensorRT {trt.__version__} is installed but cannot start (no usable GPU): {e}")
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-python is not installed (the `gpu` extra)")
    return trt
