"""A fake ``cuda.bindings.runtime``: device memory in numpy buffers, streams that record or run.

Calls return ``(err, *values)`` as cuda-python's do. Device pointers are keys into numpy buffers
(offsets inside an allocation work); host pointers are real addresses (numpy's ``ctypes.data``),
so a copy moves real bytes and an engine's numpy function sees real numbers. Work queued on a
stream runs at once, unless the stream is capturing: then it is recorded into the graph, and
``cudaGraphLaunch`` runs it again (with the addresses and shapes of capture, the data of now).
``state.fail[name] = error`` makes the next call of ``name`` fail. Streams are :class:`FakeStream`
objects with ``__int__``, like cuda-python's ``cudaStream_t``: TensorRT wants ``int(stream)``.
"""

from __future__ import annotations

import ctypes
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

DEVICE_BASE = 0x7F00_0000_0000


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorStreamCaptureUnsupported = 900


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class cudaStreamCaptureMode(enum.IntEnum):
    cudaStreamCaptureModeGlobal = 0
    cudaStreamCaptureModeThreadLocal = 1
    cudaStreamCaptureModeRelaxed = 2


@dataclass
class FakeCudaState:
    """The fake machine: its GPU, memory, streams, graphs, and every call made (``calls``)."""

    gpu_name: str = "NVIDIA H100 80GB HBM3"
    major: int = 9
    minor: int = 0
    device: dict[int, np.ndarray] = field(default_factory=dict)  # base pointer -> bytes
    pinned: dict[int, np.ndarray] = field(default_factory=dict)
    capturing: dict[int, list[Callable[[], None]]] = field(default_factory=dict)
    graphs: dict[int, list[Callable[[], None]]] = field(default_factory=dict)
    execs: dict[int, list[Callable[[], None]]] = field(default_factory=dict)
    events: dict[int, float] = field(default_factory=dict)
    streams: set[int] = field(default_factory=set)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail: dict[str, cudaError_t] = field(default_factory=dict)
    next_handle: int = 1
    next_device: int = DEVICE_BASE

    def handle(self) -> int:
        self.next_handle += 1
        return self.next_handle

    def locate(self, ptr: int, nbytes: int) -> np.ndarray:
        """The bytes at device address ``ptr`` (a view into its allocation)."""
        for base, buf in self.device.items():
            if base <= ptr and ptr + nbytes <= base + buf.size:
                return buf[ptr - base : ptr - base + nbytes]
        raise AssertionError(f"device address {ptr:#x} (+{nbytes}) is not allocated")

    def read(self, ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        return self.locate(ptr, nbytes).view(dtype).reshape(shape).copy()

    def write(self, ptr: int, array: np.ndarray) -> None:
        data = np.ascontiguousarray(array)
        self.locate(ptr, data.nbytes)[...] = data.reshape(-1).view(np.uint8)

    def enqueue(self, stream: int, op: Callable[[], None]) -> None:
        """Run ``op`` now, or record it when ``stream`` is capturing."""
        if int(stream) in self.capturing:
            self.capturing[int(stream)].append(op)
        else:
            op()


@dataclass(frozen=True)
class FakeStream:
    """cuda-python's ``cudaStream_t`` stand-in: an object, its handle through ``int()``."""

    handle: int

    def __int__(self) -> int:
        return self.handle


def install() -> tuple[ModuleType, FakeCudaState]:
    """A new fake ``cuda.bindings.runtime`` module and its state (also at ``module.fake``)."""
    state = FakeCudaState()
    ok = cudaError_t.cudaSuccess
    m = ModuleType("cuda.bindings.runtime")

    def api(fn: Callable[..., tuple[Any, ...]]) -> Callable[..., tuple[Any, ...]]:
        def call(*args: Any) -> tuple[Any, ...]:
            state.calls.append((fn.__name__, args))
            if fn.__name__ in state.fail:
                return (state.fail.pop(fn.__name__),)
            return fn(*args)

        call.__name__ = fn.__name__
        setattr(m, fn.__name__, call)
        return call

    @api
    def cudaSetDevice(device: int) -> tuple[Any, ...]:
        return (ok,)

    @api
    def cudaGetDeviceProperties(device: int) -> tuple[Any, ...]:
        name = state.gpu_name.encode().ljust(256, b"\x00")
        return ok, SimpleNamespace(name=name, major=state.major, minor=state.minor)

    @api
    def cudaGetErrorName(err: Any) -> tuple[Any, ...]:
        return ok, cudaError_t(err).name.encode()

    @api
    def cudaMalloc(nbytes: int) -> tuple[Any, ...]:
        ptr = state.next_device
        state.device[ptr] = np.zeros(nbytes, np.uint8)
        state.next_device += (nbytes + 511) // 256 * 256
        return ok, ptr

    @api
    def cudaFree(ptr: int) -> tuple[Any, ...]:
        return (ok,) if state.device.pop(int(ptr), None) is not None else (cudaError_t.cudaErrorInvalidValue,)

    @api
    def cudaMallocHost(nbytes: int) -> tuple[Any, ...]:
        buf = np.zeros(nbytes, np.uint8)
        state.pinned[buf.ctypes.data] = buf
        return ok, buf.ctypes.data

    @api
    def cudaFreeHost(ptr: int) -> tuple[Any, ...]:
        return (ok,) if state.pinned.pop(int(ptr), None) is not None else (cudaError_t.cudaErrorInvalidValue,)

    def copy(dst: int, src: int, nbytes: int, kind: cudaMemcpyKind) -> None:
        if kind == cudaMemcpyKind.cudaMemcpyHostToDevice:
            state.locate(dst, nbytes)[...] = np.frombuffer(ctypes.string_at(src, nbytes), np.uint8)
        elif kind == cudaMemcpyKind.cudaMemcpyDeviceToHost:
            ctypes.memmove(dst, state.locate(src, nbytes).ctypes.data, nbytes)
        elif kind == cudaMemcpyKind.cudaMemcpyDeviceToDevice:
            state.locate(dst, nbytes)[...] = state.locate(src, nbytes)
        else:
            raise AssertionError(f"copy kind {kind!r} is not faked")

    @api
    def cudaMemcpyAsync(dst: int, src: int, nbytes: int, kind: Any, stream: Any) -> tuple[Any, ...]:
        state.enqueue(stream, lambda: copy(int(dst), int(src), int(nbytes), kind))
        return (ok,)

    @api
    def cudaMemcpy(dst: int, src: int, nbytes: int, kind: Any) -> tuple[Any, ...]:
        copy(int(dst), int(src), int(nbytes), kind)
        return (ok,)

    @api
    def cudaStreamCreate() -> tuple[Any, ...]:
        stream = state.handle()
        state.streams.add(stream)
        return ok, FakeStream(stream)

    @api
    def cudaStreamDestroy(stream: int) -> tuple[Any, ...]:
        state.streams.discard(int(stream))
        return (ok,)

    @api
    def cudaStreamSynchronize(stream: int) -> tuple[Any, ...]:
        return (ok,)

    @api
    def cudaEventCreate() -> tuple[Any, ...]:
        return ok, state.handle()

    @api
    def cudaEventDestroy(event: int) -> tuple[Any, ...]:
        state.events.pop(int(event), None)
        return (ok,)

    @api
    def cudaEventRecord(event: int, stream: int) -> tuple[Any, ...]:
        state.events[int(event)] = time.perf_counter()
        return (ok,)

    @api
    def cudaEventElapsedTime(start: int, end: int) -> tuple[Any, ...]:
        if int(start) not in state.events or int(end) not in state.events:
            return cudaError_t.cudaErrorInvalidValue, 0.0
        return ok, (state.events[int(end)] - state.events[int(start)]) * 1e3

    @api
    def cudaStreamBeginCapture(stream: int, mode: Any) -> tuple[Any, ...]:
        state.capturing[int(stream)] = []
        return (ok,)

    @api
    def cudaStreamEndCapture(stream: int) -> tuple[Any, ...]:
        graph = state.handle()
        state.graphs[graph] = state.capturing.pop(int(stream))
        return ok, graph

    @api
    def cudaGraphInstantiate(graph: int, flags: int) -> tuple[Any, ...]:
        exe = state.handle()
        state.execs[exe] = list(state.graphs[int(graph)])
        return ok, exe

    @api
    def cudaGraphLaunch(exe: int, stream: int) -> tuple[Any, ...]:
        for op in state.execs[int(exe)]:
            state.enqueue(stream, op)
        return (ok,)

    @api
    def cudaGraphDestroy(graph: int) -> tuple[Any, ...]:
        state.graphs.pop(int(graph))
        return (ok,)

    @api
    def cudaGraphExecDestroy(exe: int) -> tuple[Any, ...]:
        state.execs.pop(int(exe))
        return (ok,)

    m.cudaError_t = cudaError_t
    m.cudaMemcpyKind = cudaMemcpyKind
    m.cudaStreamCaptureMode = cudaStreamCaptureMode
    m.fake = state
    return m, state


@dataclass
class FakeCudaTensor:
    """Stands in for a torch CUDA tensor: ``is_cuda``, ``data_ptr()``, ``shape``, ``dtype``, contiguity."""

    ptr: int
    shape: tuple[int, ...]
    dtype: str  # e.g. "torch.float32"
    contiguous: bool = True
    is_cuda: bool = True

    def data_ptr(self) -> int:
        return self.ptr

    def is_contiguous(self) -> bool:
        return self.contiguous
