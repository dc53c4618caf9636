"""A fake ``cuda.bindings.runtime``: device memory in numpy buffers, streams that queue work.

Calls return ``(err, *values)`` as cuda-python's do. Device pointers are keys into numpy buffers
(offsets inside an allocation work); host pointers are real addresses (numpy's ``ctypes.data``),
so a copy moves real bytes and an engine's numpy function sees real numbers. Work queued on a
stream waits until something orders it, as on a GPU: ``cudaStreamSynchronize`` (that stream),
``cudaStreamWaitEvent`` (the stream the event was recorded on), the synchronous ``cudaMemcpy``
(every stream, as the legacy default stream does). A capturing stream records into the graph
instead, and ``cudaGraphLaunch`` queues it again (the addresses of capture, the data of now).
The current device is per thread (0 until ``cudaSetDevice``); streams and events belong to the
device current when they were made. ``state.fail[name] = error`` makes the next call of ``name``
fail. Streams are :class:`FakeStream` objects with ``__int__``, like cuda-python's
``cudaStream_t``: TensorRT wants ``int(stream)``. Every public name of the module is checked
against the real bindings' names (``real_names/cuda-<version>.txt``, from ``cuda_names.py``).
"""

from __future__ import annotations

import ctypes
import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

DEVICE_BASE = 0x7F00_0000_0000
REAL_NAMES = Path(__file__).parent / "real_names" / "cuda-12.9.10.txt"


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400
    cudaErrorNotReady = 600
    cudaErrorStreamCaptureUnsupported = 900
    cudaErrorStreamCaptureInvalidated = 901


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


class cudaDeviceProp:
    """The properties the backend reads (the real class has many more)."""

    def __init__(self, name: bytes, major: int, minor: int) -> None:
        self.name, self.major, self.minor = name, major, minor


@dataclass
class FakeCudaState:
    """The fake machine: its GPU, memory, streams, graphs, and every call made (``calls``)."""

    gpu_name: str = "NVIDIA H100 80GB HBM3"
    major: int = 9
    minor: int = 0
    device: dict[int, np.ndarray] = field(default_factory=dict)  # base pointer -> bytes
    pinned: dict[int, np.ndarray] = field(default_factory=dict)
    capturing: dict[int, list[Callable[[], None]]] = field(default_factory=dict)
    invalidated: dict[int, bool] = field(default_factory=dict)  # captures a failed call broke
    graphs: dict[int, list[Callable[[], None]]] = field(default_factory=dict)
    execs: dict[int, list[Callable[[], None]]] = field(default_factory=dict)
    events: dict[int, float] = field(default_factory=dict)  # event -> time it completed
    event_device: dict[int, int] = field(default_factory=dict)
    event_stream: dict[int, int] = field(default_factory=dict)  # the stream last recorded on
    streams: set[int] = field(default_factory=set)
    stream_device: dict[int, int] = field(default_factory=dict)
    queues: dict[int, list[Callable[[], None]]] = field(default_factory=dict)  # stream -> pending work
    device_count: int = 2
    local: threading.local = field(default_factory=threading.local)
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

    @property
    def current_device(self) -> int:
        """The calling thread's current device (CUDA keeps one per host thread)."""
        return int(getattr(self.local, "device", 0))

    def enqueue(self, stream: int, op: Callable[[], None]) -> None:
        """Queue ``op`` on ``stream`` (it runs when the stream is synchronized or waited for), or
        record it into the graph when ``stream`` is capturing. Handle 0, the legacy default stream,
        first waits for every other stream, as it does on a GPU."""
        if int(stream) in self.capturing:
            self.capturing[int(stream)].append(op)
        elif int(stream) == 0:
            self.drain_all()
            op()
        else:
            self.queues.setdefault(int(stream), []).append(op)

    def drain(self, stream: int) -> None:
        """Run the work queued on ``stream``, in order."""
        queue = self.queues.get(int(stream), [])
        while queue:
            queue.pop(0)()

    def drain_all(self) -> None:
        for stream in list(self.queues):
            self.drain(stream)


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
    bad_handle = cudaError_t.cudaErrorInvalidResourceHandle
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
        if not 0 <= int(device) < state.device_count:
            return (cudaError_t.cudaErrorInvalidDevice,)
        state.local.device = int(device)
        return (ok,)

    @api
    def cudaGetDevice() -> tuple[Any, ...]:
        return ok, state.current_device

    @api
    def cudaGetDeviceCount() -> tuple[Any, ...]:
        return ok, state.device_count

    @api
    def cudaGetDeviceProperties(device: int) -> tuple[Any, ...]:
        if not 0 <= int(device) < state.device_count:
            return cudaError_t.cudaErrorInvalidDevice, None
        name = state.gpu_name.encode().ljust(256, b"\x00")
        return ok, cudaDeviceProp(name, state.major, state.minor)

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
        state.drain_all()  # the legacy default stream waits for every blocking stream
        copy(int(dst), int(src), int(nbytes), kind)
        return (ok,)

    @api
    def cudaStreamCreate() -> tuple[Any, ...]:
        stream = state.handle()
        state.streams.add(stream)
        state.stream_device[stream] = state.current_device
        return ok, FakeStream(stream)

    @api
    def cudaStreamDestroy(stream: int) -> tuple[Any, ...]:
        state.drain(int(stream))  # destroying a stream lets its queued work finish
        state.streams.discard(int(stream))
        state.queues.pop(int(stream), None)
        return (ok,)

    @api
    def cudaStreamSynchronize(stream: int) -> tuple[Any, ...]:
        if int(stream) in state.capturing:
            return (cudaError_t.cudaErrorStreamCaptureUnsupported,)
        state.drain(int(stream))
        return (ok,)

    @api
    def cudaStreamWaitEvent(stream: int, event: int, flags: int) -> tuple[Any, ...]:
        if int(event) not in state.event_device:
            return (bad_handle,)
        recorded_on = state.event_stream.get(int(event))
        if recorded_on is not None:
            state.drain(recorded_on)  # later work on ``stream`` runs after what the event covers
        return (ok,)

    @api
    def cudaEventCreate() -> tuple[Any, ...]:
        event = state.handle()
        state.event_device[event] = state.current_device
        return ok, event

    @api
    def cudaEventDestroy(event: int) -> tuple[Any, ...]:
        state.events.pop(int(event), None)
        state.event_device.pop(int(event), None)
        return (ok,)

    @api
    def cudaEventRecord(event: int, stream: int) -> tuple[Any, ...]:
        event, stream = int(event), int(stream)
        if event not in state.event_device:
            return (bad_handle,)
        if stream and state.stream_device.get(stream, state.event_device[event]) != state.event_device[event]:
            return (bad_handle,)  # an event and the stream it is recorded on share a device
        state.events.pop(event, None)
        state.event_stream[event] = stream

        def complete() -> None:
            state.events[event] = time.perf_counter()

        state.enqueue(stream, complete)
        return (ok,)

    @api
    def cudaEventElapsedTime(start: int, end: int) -> tuple[Any, ...]:
        if int(start) not in state.event_device or int(end) not in state.event_device:
            return bad_handle, 0.0
        if int(start) not in state.events or int(end) not in state.events:
            return cudaError_t.cudaErrorNotReady, 0.0
        return ok, (state.events[int(end)] - state.events[int(start)]) * 1e3

    @api
    def cudaStreamBeginCapture(stream: int, mode: Any) -> tuple[Any, ...]:
        state.capturing[int(stream)] = []
        return (ok,)

    @api
    def cudaStreamEndCapture(stream: int) -> tuple[Any, ...]:
        ops = state.capturing.pop(int(stream), None)
        if ops is None or state.invalidated.pop(int(stream), False):
            return cudaError_t.cudaErrorStreamCaptureInvalidated, None
        graph = state.handle()
        state.graphs[graph] = ops
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
    m.cudaDeviceProp = cudaDeviceProp
    check_names(m)
    m.fake = state
    return m, state


def real_names() -> frozenset[str]:
    lines = REAL_NAMES.read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def public_names(module: ModuleType) -> set[str]:
    """Module functions and classes, and each class's members as ``Class.member``."""
    names: set[str] = set()
    for name, value in vars(module).items():
        if name.startswith("_") or name == "fake":
            continue
        names.add(name)
        if isinstance(value, type):
            members = value.__members__ if issubclass(value, enum.Enum) else vars(value)
            names.update(f"{name}.{member}" for member in members if not member.startswith("_"))
            if value is cudaDeviceProp:
                names.update(f"{name}.{a}" for a in ("name", "major", "minor"))
    return names


def check_names(module: ModuleType) -> None:
    unknown = sorted(public_names(module) - real_names())
    if unknown:
        raise AssertionError(f"fake cuda.bindings.runtime exposes names the real bindings lack: {unknown}")


@dataclass
class FakeCudaTensor:
    """Stands in for a torch CUDA tensor: ``is_cuda``, ``data_ptr()``, ``shape``, ``dtype``, contiguity."""

    ptr: int
    shape: tuple[int, ...]
    dtype: str  # e.g. "torch.float32"
    contiguous: bool = True
    is_cuda: bool = True
    device: str = "cuda:0"

    def data_ptr(self) -> int:
        return self.ptr

    def is_contiguous(self) -> bool:
        return self.contiguous
