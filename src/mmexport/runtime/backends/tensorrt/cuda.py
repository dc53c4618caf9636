"""CUDA through cuda-python (``cuda.bindings.runtime``): memory, streams, events and graphs.

Every cuda-python call returns ``(err, *values)``; :meth:`Cuda.call` checks ``err`` once, in one
place, and turns a failure into a one-line ``BackendError`` with CUDA's error name. Device memory
is held in grow-only :class:`DeviceBuffer` objects, so that a run at a smaller shape reuses the
allocation of a larger one and steady-state runs never allocate.
"""

from __future__ import annotations

import ctypes
import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from mmexport.core.errors import BackendError, MissingDependencyError


def import_cudart(purpose: str = "running TensorRT engines") -> ModuleType:
    """``cuda.bindings.runtime`` (cuda-python >= 12), or MissingDependencyError naming the ``gpu`` extra."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        raise MissingDependencyError("cuda-python", "gpu", purpose) from None


class Cuda:
    """The CUDA runtime calls the TensorRT backend makes, each checked."""

    def __init__(self, rt: ModuleType, device_id: int = 0) -> None:
        self.rt = rt
        self.device_id = device_id
        self.use()

    def use(self) -> None:
        """Make this GPU the calling thread's current device (CUDA keeps one per thread): every
        entry point calls it, so a runner built on one thread runs on its GPU from any other."""
        self.call("cudaSetDevice", self.device_id)

    def call(self, name: str, *args: Any) -> Any:
        """``rt.<name>(*args)``; its value (one), values (a tuple) or None; raises on an error code."""
        err, *values = getattr(self.rt, name)(*args)
        if err != self.rt.cudaError_t.cudaSuccess:
            raise BackendError("tensorrt", f"{name} failed: {self.error_name(err)}")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def error_name(self, err: Any) -> str:
        try:
            _code, name = self.rt.cudaGetErrorName(err)
        except Exception:  # the error code itself may be unusable
            return str(err)
        return name.decode() if isinstance(name, bytes) else str(name)

    def device(self) -> tuple[str, str]:
        """The GPU's name and compute capability (``"8.7"``)."""
        props = self.call("cudaGetDeviceProperties", self.device_id)
        name = props.name
        name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        return name.split("\x00")[0].strip(), f"{props.major}.{props.minor}"

    def copy(self, dst: int, src: int, nbytes: int, kind: str, stream: Any) -> None:
        """``kind``: ``HostToDevice``, ``DeviceToHost`` or ``DeviceToDevice``; queued on ``stream``."""
        if nbytes:
            kinds = self.rt.cudaMemcpyKind
            self.call("cudaMemcpyAsync", dst, src, nbytes, getattr(kinds, f"cudaMemcpy{kind}"), stream)

    def record(self, event: Any, stream: Any) -> None:
        self.call("cudaEventRecord", event, stream)

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return float(self.call("cudaEventElapsedTime", start, end))

    def begin_capture(self, stream: Any) -> None:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self.call("cudaStreamBeginCapture", stream, mode)

    def end_capture(self, stream: Any) -> Any:
        """The captured graph, instantiated; the graph itself is destroyed once instantiated."""
        graph = self.call("cudaStreamEndCapture", stream)
        try:
            return self.call("cudaGraphInstantiate", graph, 0)
        finally:
            self.call("cudaGraphDestroy", graph)

    def abandon_capture(self, stream: Any) -> None:
        """End a capture that failed, ignoring CUDA's own complaint (the capture is invalidated):
        the error that stopped it is the one to report."""
        err, *values = self.rt.cudaStreamEndCapture(stream)
        if err == self.rt.cudaError_t.cudaSuccess and values and values[0] is not None:
            self.rt.cudaGraphDestroy(values[0])

    def wait_for(self, stream: Any, other: int, event: Any) -> None:
        """Queue on ``stream`` a wait for the work already queued on the stream handle ``other``."""
        self.call("cudaEventRecord", event, other)
        self.call("cudaStreamWaitEvent", stream, event, 0)


class DeviceBuffer:
    """Device memory that only grows: ``ensure(n)`` reallocates when ``n`` exceeds the capacity."""

    def __init__(self, cuda: Cuda) -> None:
        self.cuda = cuda
        self.ptr = 0
        self.capacity = 0

    def ensure(self, nbytes: int) -> int:
        if nbytes > self.capacity:
            self.free()
            self.ptr = int(self.cuda.call("cudaMalloc", max(nbytes, 1)))
            self.capacity = nbytes
        return self.ptr

    def free(self) -> None:
        if self.ptr:
            self.cuda.call("cudaFree", self.ptr)
        self.ptr, self.capacity = 0, 0


class PinnedBuffer:
    """Page-locked host memory that only grows, viewed as numpy arrays (faster, truly async copies)."""

    def __init__(self, cuda: Cuda) -> None:
        self.cuda = cuda
        self.ptr = 0
        self.capacity = 0

    def view(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > self.capacity:
            self.free()
            self.ptr = int(self.cuda.call("cudaMallocHost", max(nbytes, 1)))
            self.capacity = nbytes
        raw = memoryview((ctypes.c_uint8 * max(nbytes, 1)).from_address(self.ptr)).cast("B")
        return np.frombuffer(raw, dtype=np.uint8, count=nbytes).view(dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            self.cuda.call("cudaFreeHost", self.ptr)
        self.ptr, self.capacity = 0, 0


@dataclass(frozen=True)
class DeviceArray:
    """A tensor in device memory: address, shape and dtype (a view; the runner owns the memory).

    Outputs returned by ``run_on_device`` stay valid until the runner's next run or ``close``;
    ``numpy()`` copies one to the host. Pass one back as an input to chain engines without a
    round trip through the host.
    """

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype
    cuda: Cuda | None = None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def data_ptr(self) -> int:
        return self.ptr

    def numpy(self) -> np.ndarray:
        if self.cuda is None:
            raise BackendError("tensorrt", "this DeviceArray has no CUDA handle to copy it with")
        out = np.empty(self.shape, self.dtype)
        self.cuda.use()
        self.cuda.call(
            "cudaMemcpy",
            out.ctypes.data,
            self.ptr,
            self.nbytes,
            self.cuda.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        )
        return out


def device_meta(value: Any) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and numpy dtype of a device tensor (DeviceArray, torch CUDA tensor); None otherwise.
    UnsupportedDtype for a dtype numpy cannot hold (bfloat16 without ml_dtypes)."""
    if isinstance(value, DeviceArray):
        return value.shape, value.dtype
    if getattr(value, "is_cuda", False) and hasattr(value, "data_ptr"):
        dtype = str(value.dtype).removeprefix("torch.")
        return tuple(int(d) for d in value.shape), numpy_dtype(dtype)
    return None


class UnsupportedDtype(TypeError):
    """A tensor type numpy cannot hold here; the message completes "<tensor> is ..."."""


BF16_HINT = "pip install ml_dtypes, or export the model's inputs and outputs as float16/float32"


def numpy_dtype(name: str) -> np.dtype:
    """``np.dtype(name)``; ``bfloat16`` through the ``ml_dtypes`` package when it is installed
    (numpy itself has no bfloat16)."""
    if name == "bfloat16":
        try:
            return np.dtype(importlib.import_module("ml_dtypes").bfloat16)
        except ImportError:
            raise UnsupportedDtype(
                "bfloat16, which numpy cannot hold without the 'ml_dtypes' package"
            ) from None
    try:
        return np.dtype(name)
    except TypeError:
        raise UnsupportedDtype(f"{name}, which numpy cannot hold") from None


def alignment_problem(ptr: int, alignment: int = 256) -> str | None:
    """Why TensorRT cannot take this device address for an I/O tensor (it needs 256-byte alignment)."""
    if ptr % alignment:
        return f"its device address {ptr:#x} is not {alignment}-byte aligned (TensorRT needs that)"
    return None


def caller_stream(value: Any) -> int | None:
    """The handle of torch's current CUDA stream on ``value``'s device, for a torch tensor; None
    for anything else or the legacy default stream. torch is looked up, never imported: a torch
    tensor means torch is loaded already."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor) or not value.is_cuda:
        return None
    handle = int(torch.cuda.current_stream(value.device).cuda_stream)
    return handle or None
