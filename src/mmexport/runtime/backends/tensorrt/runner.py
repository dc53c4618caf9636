"""``TrtRunner``: runs validated feeds on a TensorRT engine through cuda-python.

One execution context and one CUDA stream per runner: per call, the optimization profile whose
ranges hold the feed shapes is selected and the input shapes set (only when they change), feeds
are copied into grow-only device buffers (or used in place: torch CUDA tensors and
:class:`DeviceArray`), ``execute_async_v3`` runs on the stream, and outputs are copied back
(``run``) or left on the device (``run_on_device``). CUDA events around each phase give the GPU
time of the last call, H2D / compute / D2H apart (``timings()``).

Options (``Session(..., options={...})``): ``cuda_graph`` captures the engine's launch as a CUDA
graph after one warm-up run at a shape and replays it while shapes and addresses stay the same
(recaptured on a change); ``pinned`` stages host copies in page-locked memory.
Calls from several threads are serialized: one context cannot run two shapes at once; each
call first makes the runner's GPU the thread's current device (CUDA keeps one per thread).
Device inputs must be 256-byte aligned (a fresh allocation is; a slice such as ``t[1:]`` is not).
A torch CUDA tensor is read after the work already queued on torch's current stream for its
device: the runner's stream waits for that stream (an event), so no synchronize is needed.
Outputs whose size depends on input values (-1 after the input shapes are set) and shape-tensor
I/O are refused with a message: the runner sizes every output from the input shapes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.errors import BackendError, InputError
from mmexport.core.manifest import read_manifest
from mmexport.core.spec import ModelSpec
from mmexport.runtime.backends.base import Backend, BackendConfig, TensorInfo, feed_type_error
from mmexport.runtime.backends.tensorrt.cuda import (
    BF16_HINT,
    Cuda,
    DeviceArray,
    DeviceBuffer,
    PinnedBuffer,
    UnsupportedDtype,
    alignment_problem,
    caller_stream,
    device_meta,
    import_cudart,
)
from mmexport.runtime.backends.tensorrt.loader import (
    Machine,
    check_engine,
    deserialize,
    engine_info,
    load_tensorrt,
    machine_platform,
)
from mmexport.runtime.backends.tensorrt.tensors import EngineTensor, read_tensors, select_profile
from mmexport.runtime.runner import Capability

OPTIONS = ("cuda_graph", "pinned")


class TrtRunner(Backend):
    name = "tensorrt"
    capabilities = frozenset({Capability.RUN_ON_DEVICE, Capability.TIMINGS})

    def __init__(self, path: Path, spec: ModelSpec | None, config: BackendConfig) -> None:
        options = dict(getattr(config, "options", None) or {})
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise BackendError(
                "tensorrt", f"unknown option(s) {', '.join(unknown)}", hint=f"known: {OPTIONS}"
            )
        self._graph_mode = bool(options.get("cuda_graph", False))
        trt = load_tensorrt()
        self._cuda = cuda = Cuda(import_cudart(), config.device_id)
        self.info = engine_info(path, read_manifest(path))
        gpu_name, capability = cuda.device()
        self.machine = Machine(str(trt.__version__), gpu_name, capability, machine_platform())
        check_engine(path, self.info, self.machine)
        self._runtime, self._engine = deserialize(trt, path, self.info)
        self._tensors = read_tensors(trt, self._engine, path)
        self._inputs = [t for t in self._tensors if t.is_input]
        self._outputs = [t for t in self._tensors if not t.is_input]
        self._context = self._engine.create_execution_context()
        self._stream = cuda.call("cudaStreamCreate")
        self._events = [cuda.call("cudaEventCreate") for _ in range(4)]
        self._wait_event = cuda.call("cudaEventCreate")  # orders our stream after the caller's
        self._buffers = {t.name: DeviceBuffer(cuda) for t in self._tensors}
        self._pinned = {t.name: PinnedBuffer(cuda) for t in self._tensors} if options.get("pinned") else {}
        self._lock = threading.Lock()
        self._profile: int | None = None
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._addresses: dict[str, int] = {}
        self._graph: Any = None
        self._graph_key: tuple[Any, ...] | None = None
        self._timed = False

    # -- interface -------------------------------------------------------------------------

    def inputs(self) -> list[TensorInfo]:
        return [_info(t) for t in self._inputs]

    def outputs(self) -> list[TensorInfo]:
        return [_info(t) for t in self._outputs]

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        with self._lock:
            self._check_open()
            self._cuda.use()
            keep, results = self._execute(feeds)
            host = {}
            for t, shape, ptr in results:
                out = self._pinned[t.name].view(shape, t.dtype) if self._pinned else np.empty(shape, t.dtype)
                self._cuda.copy(out.ctypes.data, ptr, out.nbytes, "DeviceToHost", self._stream)
                host[t.name] = out
            self._finish()
            del keep
            return {k: v.copy() for k, v in host.items()} if self._pinned else host

    def run_on_device(self, feeds: Mapping[str, Any]) -> dict[str, DeviceArray]:
        """Feeds as host arrays, torch CUDA tensors or DeviceArrays; outputs left on the device.

        The outputs live in the runner's buffers: valid until its next run or ``close``.
        """
        with self._lock:
            self._check_open()
            self._cuda.use()
            keep, results = self._execute(feeds)
            self._finish()
            del keep
            return {t.name: DeviceArray(ptr, shape, t.dtype, self._cuda) for t, shape, ptr in results}

    def feed_meta(self, name: str, value: Any) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of a feed for ``Session.run_on_device``'s checks."""
        if isinstance(value, np.ndarray):
            return value.shape, value.dtype
        meta = _device_meta(name, value)
        if meta is None:
            accepted = "a numpy.ndarray, a CUDA torch.Tensor or a DeviceArray"
            raise feed_type_error(name, value, accepted)
        return meta

    def timings(self) -> dict[str, float] | None:
        """GPU milliseconds of the last call, from CUDA events: h2d, compute, d2h and their sum."""
        if not self._timed:
            return None
        ev = self._events
        elapsed = self._cuda.elapsed_ms
        return {
            "gpu": elapsed(ev[0], ev[3]),
            "h2d": elapsed(ev[0], ev[1]),
            "compute": elapsed(ev[1], ev[2]),
            "d2h": elapsed(ev[2], ev[3]),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "library": f"tensorrt {self.machine.tensorrt_version}",
            "provider": "TensorRT",
            "device": f"cuda:{self._cuda.device_id}",
            "gpu": self.machine.gpu_name,
            "compute_capability": self.machine.compute_capability,
            "tensorrt_version": self.machine.tensorrt_version,
            "engine_target": self.info.target,
            "dla_core": self.info.dla_core,
            "cuda_graph": self._graph_mode,
            "pinned": bool(self._pinned),
        }

    def close(self) -> None:
        """Free the runner's memory, stream and events; waits for a call in flight; idempotent."""
        with self._lock:
            if self._stream is None:
                return
            self._cuda.use()
            self._release()

    def _release(self) -> None:
        cuda = self._cuda
        self._drop_graph()
        for buffer in self._buffers.values():
            buffer.free()
        for pinned in self._pinned.values():
            pinned.free()
        for event in [*self._events, self._wait_event]:
            cuda.call("cudaEventDestroy", event)
        self._events = []
        if self._stream is not None:
            cuda.call("cudaStreamDestroy", self._stream)
            self._stream = None
        self._context = self._engine = self._runtime = None

    # -- one call ----------------------------------------------------------------------------

    def _execute(
        self, feeds: Mapping[str, Any]
    ) -> tuple[list[Any], list[tuple[EngineTensor, tuple[int, ...], int]]]:
        """Inputs in, engine run queued on the stream; the outputs' shapes and device addresses."""
        cuda, stream = self._cuda, self._stream
        self._set_shapes({t.name: tuple(int(d) for d in _shape(t.name, feeds[t.name])) for t in self._inputs})
        shapes = {t.name: self._output_shape(t) for t in self._outputs}
        self._wait_for_callers(feeds)
        cuda.record(self._events[0], stream)
        keep: list[Any] = []
        addresses = {t.name: self._put(t, feeds[t.name], keep) for t in self._inputs}
        cuda.record(self._events[1], stream)
        results = []
        for t in self._outputs:
            shape = shapes[t.name]
            addresses[t.name] = self._buffers[t.name].ensure(_nbytes(shape, t.dtype))
            results.append((t, shape, addresses[t.name]))
        for name, ptr in addresses.items():
            if self._addresses.get(name) != ptr and not self._context.set_tensor_address(name, ptr):
                raise BackendError("tensorrt", f"set_tensor_address refused tensor {name!r}")
        self._addresses = addresses
        self._launch()
        cuda.record(self._events[2], stream)
        return keep, results

    def _check_open(self) -> None:
        if self._stream is None:
            raise BackendError("tensorrt", "the runner is closed")

    def _output_shape(self, t: EngineTensor) -> tuple[int, ...]:
        """The output's shape at the input shapes set; a -1 left means its size depends on the
        input values (a data-dependent shape), which TensorRT reports only during the run."""
        shape = tuple(int(d) for d in self._context.get_tensor_shape(t.name))
        if any(d < 0 for d in shape):
            raise BackendError(
                "tensorrt",
                f"output {t.name!r} has a data-dependent shape {list(shape)} (-1: its size depends on the "
                "input values, known only after the run); mmexport's runner sizes outputs from input shapes",
                hint="export the model with a fixed-size output (padded to a maximum), or use trtexec",
            )
        return shape

    def _wait_for_callers(self, feeds: Mapping[str, Any]) -> None:
        """Queue a wait on our stream for torch's current stream of each torch CUDA feed."""
        waited: set[int] = set()
        for t in self._inputs:
            handle = caller_stream(feeds[t.name])
            if handle is not None and handle != self._stream_handle and handle not in waited:
                self._cuda.wait_for(self._stream, handle, self._wait_event)
                waited.add(handle)

    def _finish(self) -> None:
        self._cuda.record(self._events[3], self._stream)
        self._cuda.call("cudaStreamSynchronize", self._stream)
        self._timed = True

    def _set_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        if shapes == self._shapes:
            return
        self._shapes = {}  # until every shape below is set
        profile = select_profile(self._inputs, shapes)
        if profile != self._profile:
            try:  # the bindings raise RuntimeError on failure; older ones returned False
                selected = self._context.set_optimization_profile_async(profile, self._stream_handle)
            except RuntimeError as e:
                raise BackendError("tensorrt", f"cannot select optimization profile {profile}: {e}") from e
            if selected is False:
                raise BackendError("tensorrt", f"cannot select optimization profile {profile}")
            self._profile = profile
        for name, shape in shapes.items():
            if not self._context.set_input_shape(name, shape):
                raise InputError(name, f"TensorRT refused shape {list(shape)} (profile {profile})")
        self._shapes = shapes

    def _put(self, t: EngineTensor, value: Any, keep: list[Any]) -> int:
        """The device address holding ``value``: its own for device tensors, else our buffer after H2D."""
        meta = _device_meta(t.name, value)
        if meta is not None:
            if meta[1] != t.dtype:
                raise InputError(t.name, f"device tensor is {meta[1]}, the engine takes {t.dtype}")
            if hasattr(value, "is_contiguous") and not value.is_contiguous():
                raise InputError(t.name, "device tensor must be contiguous", hint="call .contiguous() first")
            ptr = int(value.data_ptr())
            problem = alignment_problem(ptr)
            if problem is not None:
                raise InputError(
                    t.name,
                    f"device tensor cannot be handed to TensorRT: {problem}",
                    hint="pass a copy (.clone()), not a view that starts inside another tensor (t[1:])",
                )
            return ptr
        host = np.ascontiguousarray(value, dtype=t.dtype)
        if self._pinned:
            staged = self._pinned[t.name].view(host.shape, t.dtype)
            staged[...] = host
            host = staged
        keep.append(host)
        ptr = self._buffers[t.name].ensure(host.nbytes)
        self._cuda.copy(ptr, host.ctypes.data, host.nbytes, "HostToDevice", self._stream)
        return ptr

    def _launch(self) -> None:
        """``execute_async_v3``, or in graph mode: warm-up and capture at a new key, replay after."""
        if not self._graph_mode:
            return self._enqueue()
        key = (self._profile, tuple(sorted(self._shapes.items())), tuple(sorted(self._addresses.items())))
        if self._graph is not None and key == self._graph_key:
            self._cuda.call("cudaGraphLaunch", self._graph, self._stream)
            return None
        self._drop_graph()
        self._enqueue()  # warm-up: computes this call's outputs and lets TensorRT settle its state
        self._cuda.begin_capture(self._stream)
        try:
            self._enqueue()
        except BaseException:
            self._cuda.abandon_capture(self._stream)  # keep the error that stopped the capture
            raise
        self._graph = self._cuda.end_capture(self._stream)
        self._graph_key = key
        return None

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(self._stream_handle):
            raise BackendError("tensorrt", "execute_async_v3 failed (see TensorRT's log above)")

    @property
    def _stream_handle(self) -> int:
        """The stream as TensorRT takes it: the handle as an int, not cuda-python's ``cudaStream_t``."""
        return int(self._stream)

    def _drop_graph(self) -> None:
        if self._graph is not None:
            self._cuda.call("cudaGraphExecDestroy", self._graph)
        self._graph, self._graph_key = None, None


def _device_meta(name: str, value: Any) -> tuple[tuple[int, ...], np.dtype] | None:
    try:
        return device_meta(value)
    except UnsupportedDtype as e:
        raise InputError(name, f"device tensor is {e}", hint=BF16_HINT) from None


def _shape(name: str, value: Any) -> tuple[int, ...]:
    meta = _device_meta(name, value)
    return meta[0] if meta is not None else tuple(np.shape(value))


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _info(t: EngineTensor) -> TensorInfo:
    return TensorInfo(t.name, t.dtype.name, tuple(d if d >= 0 else None for d in t.shape))
