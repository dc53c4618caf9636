"""Fake tensorrt: the runtime side. See tests/trt/fakes/__init__.py.

``Runtime(logger).deserialize_cuda_engine(plan)`` returns the engine a test registered for those
bytes (``module.fake.engines[plan] = FakeEngine(...)``), else None as TensorRT does for a plan it
cannot read. The engine has the name-based tensor API; its execution context checks shapes
against the active profile, and ``execute_async_v3`` queues the engine's numpy function on the
fake CUDA stream (``cuda_runtime``), reading inputs from and writing outputs to fake device
memory at the addresses set. Calls are appended to ``module.calls``.

Failures follow the bindings: ``set_optimization_profile_async`` raises RuntimeError ("Error in
set optimization profile async."), ``set_input_shape`` / ``set_tensor_address`` /
``execute_async_v3`` return False (a null or not 256-byte aligned address; a launch on a stream
of another device than the thread's current one; an output whose size depends on data, -1 in
``get_tensor_shape``, without an output allocator). An engine captures the ``DLA_core`` its
runtime had selected when it was deserialized.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np


class _DataType(enum.Enum):
    """TensorRT's DataType members by name (kept off the module: see FakeEngine.dtypes)."""

    FLOAT = "float32"
    HALF = "float16"
    INT8 = "int8"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"
    UINT8 = "uint8"
    BF16 = "bfloat16"


_BY_NUMPY = {m.value: m for m in _DataType}

Compute = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class FakeEngine:
    """What a test builds: I/O names, numpy dtypes (or TensorRT type names), declared shapes
    (-1 dynamic), one ``{input: (min, opt, max)}`` per profile, and the numpy function it computes."""

    inputs: dict[str, tuple[str, tuple[int, ...]]]
    outputs: dict[str, tuple[str, tuple[int, ...]]]
    profiles: list[dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]]
    compute: Compute
    shape_io: frozenset[str] = frozenset()  # shape tensors: is_shape_inference_io(name) is True
    data_dependent: frozenset[str] = frozenset()  # outputs whose size is known only after the run
    executions: int = 0
    dla_core: int | None = None  # the runtime's DLA core when deserialized (-1: none)
    seen: list[dict[str, tuple[int, ...]]] = field(default_factory=list)

    def dtype(self, name: str) -> str:
        return {**self.inputs, **self.outputs}[name][0]

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        zeros = {n: np.zeros(s, _numpy(self.dtype(n))) for n, s in shapes.items()}
        return {n: tuple(v.shape) for n, v in self.compute(zeros).items()}


def _numpy(kind: str) -> np.dtype:
    return np.dtype(kind) if kind != "bfloat16" else np.dtype("uint16")


def _require_int(stream_handle: Any) -> None:
    """TensorRT takes the stream as an int handle; cuda-python's ``cudaStream_t`` object is refused."""
    if not isinstance(stream_handle, int):
        raise TypeError(f"stream_handle must be an int, got {type(stream_handle).__name__}")


ALIGNMENT = 256  # TensorRT's requirement for I/O tensor addresses


def install(module: ModuleType, version: str) -> None:
    """Add this side's classes and enums to the fake module for version."""
    calls: list[tuple[str, Any]] = module.calls
    fake = getattr(module, "fake", None)
    if fake is None:
        fake = module.fake = SimpleNamespace(no_gpu=False)
    fake.engines = {}
    fake.dla_cores = 0  # Runtime.num_DLA_cores
    fake.fail_execute_when_capturing = False
    fake.profiles_in_use: set[int] = set()  # execute_async_v3 fails inside a CUDA graph capture

    def record(what: str, details: Any = None) -> None:
        calls.append((what, details))

    class TensorIOMode(enum.IntEnum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    class IExecutionContext:
        def __init__(self, engine: ICudaEngine) -> None:
            self._engine = engine
            self._profile = 0
            self._shapes: dict[str, tuple[int, ...]] = {}
            self._addresses: dict[str, int] = {}

        @property
        def active_optimization_profile(self) -> int:
            return self._profile

        def set_optimization_profile_async(self, profile_index: int, stream_handle: int) -> bool:
            _require_int(stream_handle)
            record("set_optimization_profile_async", (profile_index, stream_handle))
            in_use = profile_index in fake.profiles_in_use  # by another context of the engine
            if in_use or not 0 <= profile_index < len(self._engine._spec.profiles):
                raise RuntimeError("Error in set optimization profile async.")
            self._profile = profile_index
            self._shapes = {}
            return True

        def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
            shape = tuple(int(d) for d in shape)
            record("set_input_shape", (name, shape))
            low, _opt, high = self._engine._spec.profiles[self._profile][name]
            if len(shape) != len(low) or not all(
                a <= s <= b for a, s, b in zip(low, shape, high, strict=True)
            ):
                return False
            self._shapes[name] = shape
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            spec = self._engine._spec
            if name in spec.inputs:
                return self._shapes.get(name, spec.inputs[name][1])
            if name in spec.data_dependent:
                return spec.outputs[name][1]
            return spec.output_shapes(self._shapes)[name]

        def set_tensor_address(self, name: str, memory: int) -> bool:
            record("set_tensor_address", (name, memory))
            if name not in self._engine._names or not memory or int(memory) % ALIGNMENT:
                return False  # TensorRT logs "[E] ... address ... is not aligned" or null
            self._addresses[name] = int(memory)
            return True

        def get_tensor_address(self, name: str) -> int:
            return self._addresses.get(name, 0)

        def execute_async_v3(self, stream_handle: int) -> bool:
            _require_int(stream_handle)
            record("execute_async_v3", stream_handle)
            spec = self._engine._spec
            if set(self._shapes) != set(spec.inputs) or set(self._addresses) != {*spec.inputs, *spec.outputs}:
                return False
            if spec.data_dependent:
                return False  # each such output needs set_output_allocator
            cuda = sys.modules["cuda.bindings.runtime"].fake
            if cuda.stream_device.get(stream_handle, cuda.current_device) != cuda.current_device:
                return False  # kernels cannot launch on a stream of another device
            if cuda.current_device != self._engine._device:
                return False  # the engine's memory and kernels live on the device it was loaded on
            if fake.fail_execute_when_capturing and stream_handle in cuda.capturing:
                cuda.invalidated[stream_handle] = True
                return False
            shapes, addresses = dict(self._shapes), dict(self._addresses)

            def run() -> None:
                feeds = {n: cuda.read(addresses[n], s, _numpy(spec.dtype(n))) for n, s in shapes.items()}
                spec.executions += 1
                spec.seen.append(shapes)
                for n, value in spec.compute(feeds).items():
                    cuda.write(addresses[n], value.astype(_numpy(spec.dtype(n))))

            cuda.enqueue(stream_handle, run)
            return True

    class ICudaEngine:
        def __init__(self, spec: FakeEngine, device: int) -> None:
            self._spec = spec
            self._names = [*spec.inputs, *spec.outputs]
            self._device = device

        @property
        def num_io_tensors(self) -> int:
            return len(self._names)

        @property
        def num_optimization_profiles(self) -> int:
            return len(self._spec.profiles)

        def get_tensor_name(self, index: int) -> str:
            return self._names[index]

        def is_shape_inference_io(self, name: str) -> bool:
            return name in self._spec.shape_io

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return TensorIOMode.INPUT if name in self._spec.inputs else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> _DataType:
            kind = self._spec.dtype(name)
            return _DataType[kind] if kind in _DataType.__members__ else _BY_NUMPY[kind]

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return {**self._spec.inputs, **self._spec.outputs}[name][1]

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
            return list(self._spec.profiles[profile_index][name])

        def create_execution_context(self) -> IExecutionContext:
            record("create_execution_context")
            return IExecutionContext(self)

    class Runtime:
        def __init__(self, logger: Any) -> None:
            if fake.no_gpu:
                raise TypeError("pybind11::init(): factory function returned nullptr")
            self.engine_host_code_allowed = False
            self._dla_core = -1
            record("Runtime", logger)

        @property
        def num_DLA_cores(self) -> int:
            return int(fake.dla_cores)

        @property
        def DLA_core(self) -> int:
            return self._dla_core

        @DLA_core.setter
        def DLA_core(self, core: int) -> None:
            if fake.dla_cores and 0 <= core < fake.dla_cores:  # "does nothing" without DLA
                self._dla_core = int(core)

        def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
            record("deserialize_cuda_engine", {"host_code": self.engine_host_code_allowed})
            spec = fake.engines.get(bytes(serialized_engine))
            if spec is None:
                return None
            spec.dla_core = self._dla_core
            cuda = sys.modules.get("cuda.bindings.runtime")
            return ICudaEngine(spec, cuda.fake.current_device if cuda is not None else 0)

    if not hasattr(module, "Logger"):  # the builder side may have added it

        class Logger:
            WARNING = 2

            def __init__(self, min_severity: int = 2) -> None:
                self.min_severity = min_severity

        module.Logger = Logger
    module.TensorIOMode = TensorIOMode
    module.Runtime = Runtime
    module.ICudaEngine = ICudaEngine
    module.IExecutionContext = IExecutionContext
