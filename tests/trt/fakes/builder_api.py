"""Fake tensorrt: the builder side. See tests/trt/fakes/__init__.py.

A recording fake of what ``mmexport build`` uses: ILogger, Builder, the network, OnnxParser and its
errors, optimization profiles, IBuilderConfig with timing caches, DLA queries, and (10.x only)
BuilderFlag.FP16/INT8 and the INT8 calibrator bases. It fails where TensorRT fails: a parser told
to fail on a node reports that node, ``set_shape`` refuses min > opt > max, a build with FP16/INT8
flags on a strongly typed network or with a dynamic input lacking a profile returns None, and
``module.fake.builder`` can make any build return None or mark layer types DLA cannot run.
``module.fake.no_gpu = True`` makes ``Builder(logger)`` (and ``Runtime(logger)``) fail as TensorRT
does without a usable GPU: a CUDA initialization error in the log, then pybind11's TypeError.
``create_timing_cache`` returns None for bytes it cannot read, as the real binding does.
Every call that configures a build is appended to ``module.calls``.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Any

import onnx


@dataclass
class BuilderControls:
    """What a test can change: failures to inject and the fake machine's DLA cores."""

    fail_parse_on: str | None = None  # node name: parsing fails there (UNSUPPORTED_NODE)
    fail_build: bool = False  # build_serialized_network returns None
    dla_cores: int = 0
    timing_cache_mismatch: bool = False  # set_timing_cache returns False (cache from another GPU)
    dla_unsupported_ops: set[str] = field(default_factory=set)  # ONNX op types DLA cannot run
    builds: list[dict[str, Any]] = field(default_factory=list)  # what each successful build saw


# (ONNX op, input position) that TensorRT's parser turns into shape tensors.
SHAPE_OPERANDS = {
    ("Reshape", 1),
    ("Expand", 1),
    ("ConstantOfShape", 0),
    ("Tile", 1),
    ("Range", 0),
    ("Range", 1),
}


def install(module: ModuleType, version: str) -> None:
    """Add this side's classes and enums to the fake module for version."""
    generation = int(version.split(".")[0])
    controls = BuilderControls()
    fake = getattr(module, "fake", None)
    if fake is None:
        fake = module.fake = SimpleNamespace(no_gpu=False)
    fake.builder = controls
    calls: list[tuple[str, Any]] = module.calls

    def record(what: str, details: Any = None) -> None:
        calls.append((what, details))

    class _Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    class ILogger:
        Severity = _Severity
        INTERNAL_ERROR = _Severity.INTERNAL_ERROR
        ERROR = _Severity.ERROR
        WARNING = _Severity.WARNING
        INFO = _Severity.INFO
        VERBOSE = _Severity.VERBOSE

        def __init__(self) -> None:
            self.min_severity = _Severity.WARNING

        def log(self, severity: _Severity, msg: str) -> None:
            raise NotImplementedError

    class Logger(ILogger):
        def __init__(self, min_severity: _Severity = _Severity.WARNING) -> None:
            super().__init__()
            self.min_severity = min_severity

        def log(self, severity: _Severity, msg: str) -> None:
            pass

    flag_names = ["EXPLICIT_BATCH", "STRONGLY_TYPED"] if generation == 10 else ["STRONGLY_TYPED"]
    NetworkDefinitionCreationFlag = enum.IntEnum(  # type: ignore[misc]
        "NetworkDefinitionCreationFlag", {n: i for i, n in enumerate(flag_names)}
    )
    builder_flags = ["GPU_FALLBACK", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"]
    if generation == 10:
        builder_flags += ["FP16", "INT8"]
    BuilderFlag = enum.IntEnum("BuilderFlag", {n: i for i, n in enumerate(builder_flags)})  # type: ignore[misc]
    MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1})  # type: ignore[misc]
    levels = ["NONE", "AMPERE_PLUS"] + (["SAME_COMPUTE_CAPABILITY"] if generation >= 11 else [])
    HardwareCompatibilityLevel = enum.IntEnum(  # type: ignore[misc]
        "HardwareCompatibilityLevel", {n: i for i, n in enumerate(levels)}
    )
    DeviceType = enum.IntEnum("DeviceType", {"GPU": 0, "DLA": 1})  # type: ignore[misc]
    ErrorCode = enum.IntEnum("ErrorCode", {"SUCCESS": 0, "INVALID_NODE": 1, "UNSUPPORTED_NODE": 2})  # type: ignore[misc]
    LayerType = enum.IntEnum(
        "LayerType", {"ELEMENTWISE": 0, "MATRIX_MULTIPLY": 1, "ACTIVATION": 2, "SHUFFLE": 3}
    )  # type: ignore[misc]

    class IHostMemory(bytes):
        @property
        def nbytes(self) -> int:
            return len(self)

    class ITensor:
        def __init__(
            self, name: str, shape: tuple[int, ...], dtype: str, is_shape_tensor: bool = False
        ) -> None:
            self.name = name
            self.shape = shape
            self.dtype = dtype
            self.is_shape_tensor = is_shape_tensor

    class ILayer:
        def __init__(self, name: str, op_type: str) -> None:
            self.name = name
            self.type = getattr(LayerType, op_type.upper(), LayerType.ELEMENTWISE)
            self._op_type = op_type

    class INetworkDefinition:
        def __init__(self, flags: int) -> None:
            self._flags = flags
            self._inputs: list[ITensor] = []
            self._layers: list[ILayer] = []

        @property
        def num_inputs(self) -> int:
            return len(self._inputs)

        def get_input(self, index: int) -> ITensor:
            return self._inputs[index]

        @property
        def num_layers(self) -> int:
            return len(self._layers)

        def get_layer(self, index: int) -> ILayer:
            return self._layers[index]

    class ParserError:
        def __init__(self, code: Any, desc: str, node: int, node_name: str, node_operator: str) -> None:
            self._fields = (code, desc, node, node_name, node_operator)

        def code(self) -> Any:
            return self._fields[0]

        def desc(self) -> str:
            return self._fields[1]

        def node(self) -> int:
            return self._fields[2]

        def node_name(self) -> str:
            return self._fields[3]

        def node_operator(self) -> str:
            return self._fields[4]

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
            self._network = network
            self._errors: list[ParserError] = []

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, index: int) -> ParserError:
            return self._errors[index]

        def clear_errors(self) -> None:
            self._errors.clear()

        def parse_from_file(self, model: str) -> bool:
            record("parse_from_file", model)
            graph = onnx.load(model, load_external_data=False).graph
            initializers = {i.name for i in graph.initializer}
            for index, node in enumerate(graph.node):
                if node.name == controls.fail_parse_on:
                    desc = f"{node.op_type} is not supported by this fake parser"
                    self._errors.append(
                        ParserError(ErrorCode.UNSUPPORTED_NODE, desc, index, node.name, node.op_type)
                    )
                    return False
                self._network._layers.append(ILayer(node.name, node.op_type))
            shape_operands = {  # inputs whose values TensorRT reads as shapes (a subset of its rules)
                name
                for node in graph.node
                for position, name in enumerate(node.input)
                if (node.op_type, position) in SHAPE_OPERANDS
            }
            for value in graph.input:
                if value.name in initializers:
                    continue
                dims = tuple(
                    d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim
                )
                elem = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
                self._network._inputs.append(
                    ITensor(value.name, dims, str(elem), value.name in shape_operands)
                )
            return True

    class IOptimizationProfile:
        def __init__(self) -> None:
            self._shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

        def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:
            """Raises as the bindings do (their doc says ValueError) with their message."""
            lo, mid, hi = tuple(min), tuple(opt), tuple(max)
            if len(mid) != len(lo) or any(b < a for a, b in zip(lo, mid, strict=False)):
                raise ValueError("Shape provided for opt is inconsistent with other shapes.")
            if len(hi) != len(lo) or any(c < b for b, c in zip(mid, hi, strict=False)):
                raise ValueError("Shape provided for max is inconsistent with other shapes.")
            self._shapes[input] = (lo, mid, hi)

        def get_shape(self, input: str) -> list[tuple[int, ...]]:
            return list(self._shapes.get(input, ()))

    class ITimingCache:
        def __init__(self, entries: list[str]) -> None:
            self._entries = entries

        def serialize(self) -> IHostMemory:
            return IHostMemory(("FAKE-TIMING-CACHE\n" + "\n".join(self._entries)).encode())

        def combine(self, input_cache: ITimingCache, ignore_mismatch: bool) -> bool:
            self._entries += [e for e in input_cache._entries if e not in self._entries]
            return True

        def reset(self) -> bool:
            self._entries.clear()
            return True

    class IBuilderConfig:
        def __init__(self) -> None:
            self._set_flags: set[Any] = set()
            self._pools: dict[Any, int] = {}
            self._profiles: list[IOptimizationProfile] = []
            self._timing_cache: ITimingCache | None = None
            self.builder_optimization_level = 3
            self.hardware_compatibility_level = HardwareCompatibilityLevel.NONE
            self.default_device_type = DeviceType.GPU
            self.DLA_core = -1
            if generation == 10:
                self.int8_calibrator: Any = None
                self._calibration_profile: IOptimizationProfile | None = None

        def set_flag(self, flag: Any) -> None:
            record("set_flag", flag.name)
            self._set_flags.add(flag)

        def get_flag(self, flag: Any) -> bool:
            return flag in self._set_flags

        def clear_flag(self, flag: Any) -> None:
            self._set_flags.discard(flag)

        def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
            record("set_memory_pool_limit", (pool.name, pool_size))
            self._pools[pool] = pool_size

        def get_memory_pool_limit(self, pool: Any) -> int:
            return self._pools.get(pool, 1 << 40)

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            if not profile._shapes:
                return -1  # TensorRT refuses a profile without shapes
            record("add_optimization_profile", dict(profile._shapes))
            self._profiles.append(profile)
            return len(self._profiles) - 1

        @property
        def num_optimization_profiles(self) -> int:
            return len(self._profiles)

        def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache | None:
            data = bytes(serialized_timing_cache)
            record("create_timing_cache", data)
            if data and not data.startswith(b"FAKE-TIMING-CACHE"):
                return None  # the real binding returns None for bytes it cannot deserialize
            return ITimingCache(data.decode().splitlines()[1:] if data else [])

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            record("set_timing_cache", ignore_mismatch)
            if controls.timing_cache_mismatch and cache._entries and not ignore_mismatch:
                return False  # recorded on another device: TensorRT refuses it and keeps none
            self._timing_cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache | None:
            return self._timing_cache

        def can_run_on_DLA(self, layer: ILayer) -> bool:
            return layer._op_type not in controls.dla_unsupported_ops

        if generation == 10:

            def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
                record("set_calibration_profile", dict(profile._shapes))
                self._calibration_profile = profile
                return True

    class Builder:
        def __init__(self, logger: ILogger) -> None:
            if fake.no_gpu:
                logger.log(_Severity.ERROR, "CUDA initialization failure with error: 35")
                raise TypeError("pybind11::init(): factory function returned nullptr")
            self.logger = logger
            record("Builder", None)

        @property
        def num_DLA_cores(self) -> int:
            return controls.dla_cores

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            record("create_network", flags)
            return INetworkDefinition(flags)

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(
            self, network: INetworkDefinition, config: IBuilderConfig
        ) -> IHostMemory | None:
            record("build_serialized_network", None)
            problem = _build_problem(network, config)
            if problem is None and controls.fail_build:
                problem = "out of memory while building (injected)"
            if problem is not None:
                self.logger.log(_Severity.ERROR, problem)
                return None
            seen = {
                "flags": sorted(f.name for f in config._set_flags),
                "network_flags": network._flags,
                "profiles": [dict(p._shapes) for p in config._profiles],
                "device": config.default_device_type.name,
            }
            if generation == 10 and config.int8_calibrator is not None:
                seen["calibration_cache"] = bytes(config.int8_calibrator.read_calibration_cache() or b"")
            controls.builds.append(seen)
            if config._timing_cache is not None:
                config._timing_cache._entries.append(f"tactics for {len(network._layers)} layers")
            summary = json.dumps({k: v for k, v in seen.items() if k in ("flags", "network_flags", "device")})
            return IHostMemory(b"FAKE-PLAN " + summary.encode())

    def _build_problem(network: INetworkDefinition, config: IBuilderConfig) -> str | None:
        strong = bool(network._flags & (1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)))
        typed_flags = {"FP16", "INT8"} & {f.name for f in config._set_flags}
        if strong and typed_flags:
            return f"strongly typed networks do not allow builder flags {sorted(typed_flags)}"
        for tensor in network._inputs:
            if -1 in tensor.shape and not any(tensor.name in p._shapes for p in config._profiles):
                return f"input {tensor.name!r} has dynamic dims and no optimization profile"
        if "INT8" in typed_flags:
            calibrator = config.int8_calibrator
            if calibrator is None:
                return "INT8 flag set, but no calibrator and no Q/DQ"
            batch = None if calibrator.read_calibration_cache() else calibrator.get_batch(["x"])
            if not calibrator.read_calibration_cache() and batch is None:
                return "calibration failed: no cache and no batches"
        on_dla = config.default_device_type == DeviceType.DLA
        if on_dla and not 0 <= config.DLA_core < controls.dla_cores:
            return f"DLA core {config.DLA_core} does not exist ({controls.dla_cores} DLA cores)"
        return None

    names: dict[str, Any] = {
        "ILogger": ILogger,
        "Logger": Logger,
        "NetworkDefinitionCreationFlag": NetworkDefinitionCreationFlag,
        "BuilderFlag": BuilderFlag,
        "MemoryPoolType": MemoryPoolType,
        "HardwareCompatibilityLevel": HardwareCompatibilityLevel,
        "DeviceType": DeviceType,
        "ErrorCode": ErrorCode,
        "LayerType": LayerType,
        "IHostMemory": IHostMemory,
        "ITensor": ITensor,
        "ILayer": ILayer,
        "INetworkDefinition": INetworkDefinition,
        "ParserError": ParserError,
        "OnnxParser": OnnxParser,
        "IOptimizationProfile": IOptimizationProfile,
        "ITimingCache": ITimingCache,
        "IBuilderConfig": IBuilderConfig,
        "Builder": Builder,
    }
    if generation == 10:
        names.update(_calibrator_bases(record))
    for name, value in names.items():
        setattr(module, name, value)


def _calibrator_bases(record: Any) -> dict[str, Any]:
    """IInt8Calibrator and the two cache-compatible subclasses (TensorRT 10.x only)."""
    CalibrationAlgoType = enum.IntEnum(  # type: ignore[misc]
        "CalibrationAlgoType", {"ENTROPY_CALIBRATION_2": 2, "MINMAX_CALIBRATION": 3}
    )

    class IInt8Calibrator:
        def __init__(self) -> None:
            record("calibrator_init", type(self).__name__)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> Any:
            raise NotImplementedError

        def read_calibration_cache(self) -> Any:
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            return None

    class IInt8EntropyCalibrator2(IInt8Calibrator):
        def get_algorithm(self) -> Any:
            return CalibrationAlgoType.ENTROPY_CALIBRATION_2

    class IInt8MinMaxCalibrator(IInt8Calibrator):
        def get_algorithm(self) -> Any:
            return CalibrationAlgoType.MINMAX_CALIBRATION

    return {
        "CalibrationAlgoType": CalibrationAlgoType,
        "IInt8Calibrator": IInt8Calibrator,
        "IInt8EntropyCalibrator2": IInt8EntropyCalibrator2,
        "IInt8MinMaxCalibrator": IInt8MinMaxCalibrator,
    }
