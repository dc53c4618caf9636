"""The TensorRT side of ``mmexport build``: parse the ONNX, configure the builder, build the plan.

Everything here talks to the ``tensorrt`` module it is given (the real one, or the test fake);
choosing options, files and manifests is :mod:`mmexport.trt.build_stage`'s job. The network is
strongly typed (precision from the ONNX) unless TensorRT 10 builder flags set it (FP16 / implicit
INT8), which TensorRT only allows on a weakly typed network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mmexport.core.errors import EngineBuildError
from mmexport.trt.profiles import Profile

HARDWARE_COMPAT = {"ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY"}
MAX_LOG_LINES = 10


@dataclass(frozen=True)
class BuilderSettings:
    """What the builder is told, already checked against the target and the TensorRT generation."""

    profiles: list[Profile]
    builder_flags: tuple[str, ...] = ()  # BuilderFlag names, e.g. ("FP16",) on TensorRT 10
    workspace_bytes: int | None = None
    opt_level: int = 3
    hardware_compat: str | None = None  # a key of HARDWARE_COMPAT
    dla_core: int | None = None
    timing_cache: bytes | None = None  # a serialized cache to start from (b"": a new one)
    timing_cache_name: str | None = None  # its file, for notes
    calibrator: Any = None  # TensorRT 10 implicit INT8 only

    @property
    def strongly_typed(self) -> bool:
        return not {"FP16", "INT8"} & set(self.builder_flags)


@dataclass
class Plan:
    """A built engine: TensorRT's serialized plan and what the build reported."""

    data: bytes
    timing_cache: bytes | None
    gpu_fallback: list[str] = field(default_factory=list)  # "layer (type)" DLA cannot run
    notes: list[str] = field(default_factory=list)


def make_logger(trt: ModuleType) -> Any:
    """A TensorRT logger that keeps warnings and errors, so that a failure can quote them."""

    class KeepingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.lines: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= int(trt.ILogger.WARNING):
                self.lines.append(str(msg))

        def errors(self) -> list[str]:
            return self.lines[-MAX_LOG_LINES:]

    return KeepingLogger()


def network_flags(trt: ModuleType, strongly_typed: bool) -> int:
    """``1 << STRONGLY_TYPED`` (works on 10 and 11), or 0 for TensorRT 10's weakly typed network."""
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0


def parse_onnx(trt: ModuleType, network: Any, logger: Any, path: Path) -> Any:
    """Parse ``path`` into ``network``; every parser error with its node, name and op."""
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(path)):
        return parser
    problems = [describe_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
    raise EngineBuildError(
        f"TensorRT's ONNX parser refused {path.name}",
        problems=problems or logger.errors(),
        hint=f"`mmexport check {path.name}` lists ops the target's parser lacks",
    )


def describe_parser_error(error: Any) -> str:
    """``node 12 'attn/Loop' (Loop): <desc> [UNSUPPORTED_NODE]``."""
    code = error.code()
    code_name = getattr(code, "name", str(code))
    return (
        f"node {error.node()} {error.node_name()!r} ({error.node_operator()}): {error.desc()} [{code_name}]"
    )


def network_inputs(network: Any) -> dict[str, tuple[int, ...]]:
    """Each input's declared shape; a shape-tensor input (its values are a shape, read from host
    memory and given min/opt/max values by ``set_shape_input``) is refused: the spec gives dims."""
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    shape_inputs = [t.name for t in tensors if t.is_shape_tensor]
    if shape_inputs:
        raise EngineBuildError(
            f"input(s) {', '.join(map(repr, shape_inputs))} are shape tensors (their values set output "
            "shapes), which mmexport builds and runs do not support",
            hint="export with those values folded into constants",
        )
    return {t.name: tuple(t.shape) for t in tensors}


def add_profiles(
    trt: ModuleType, builder: Any, config: Any, network: Any, profiles: list[Profile]
) -> list[Any]:
    """Each profile's min/opt/max for every network input; the spec must name every input."""
    inputs = network_inputs(network)
    unknown = [name for name in inputs if name not in profiles[0].shapes]
    if unknown:
        raise EngineBuildError(f"the network has inputs the spec does not name: {', '.join(unknown)}")
    added = []
    for number, profile in enumerate(profiles):
        trt_profile = builder.create_optimization_profile()
        for name in inputs:
            lo, opt, hi = profile.shapes[name]
            try:  # the bindings raise (ValueError per their doc; RuntimeError seen) rather than return
                trt_profile.set_shape(name, lo, opt, hi)
            except (ValueError, RuntimeError) as e:
                raise EngineBuildError(
                    f"TensorRT refused profile {number} for input {name!r}: min {list(lo)}, opt "
                    f"{list(opt)}, max {list(hi)} ({e})"
                ) from e
        if config.add_optimization_profile(trt_profile) < 0:
            raise EngineBuildError(f"TensorRT refused optimization profile {number}: {profile.to_dict()}")
        added.append(trt_profile)
    return added


def configure(trt: ModuleType, builder: Any, config: Any, settings: BuilderSettings) -> list[str]:
    """Apply ``settings`` to ``config``; notes on what was ignored."""
    notes: list[str] = []
    if settings.workspace_bytes is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    config.builder_optimization_level = settings.opt_level
    for name in settings.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if settings.hardware_compat is not None:
        level = HARDWARE_COMPAT[settings.hardware_compat]
        config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, level)
    if settings.dla_core is not None:
        if settings.dla_core >= builder.num_DLA_cores:
            raise EngineBuildError(
                f"DLA core {settings.dla_core} does not exist here ({builder.num_DLA_cores} DLA cores)"
            )
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = settings.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if settings.timing_cache is not None:
        notes += use_timing_cache(config, settings.timing_cache, settings.timing_cache_name)
    if settings.calibrator is not None:
        config.int8_calibrator = settings.calibrator
    return notes


def use_timing_cache(config: Any, data: bytes, name: str | None) -> list[str]:
    """Start from the serialized cache ``data``, or from a new one when TensorRT cannot read it
    (None or RuntimeError from ``create_timing_cache``) or it was recorded elsewhere; notes."""
    shown = name or "the timing cache"
    try:
        cache = config.create_timing_cache(data)
    except RuntimeError:
        cache = None
    if cache is None:
        config.set_timing_cache(config.create_timing_cache(b""), False)
        return [f"timing cache {shown} unreadable; starting a new one"]
    if not config.set_timing_cache(cache, False):
        config.set_timing_cache(config.create_timing_cache(b""), False)
        return [f"timing cache {shown} was recorded on another GPU or TensorRT version; starting a new one"]
    return []


def gpu_fallback(config: Any, network: Any) -> list[str]:
    """The layers DLA cannot run (they fall back to the GPU), as ``name (type)``."""
    layers = (network.get_layer(i) for i in range(network.num_layers))
    return [
        f"{layer.name} ({_type_name(layer.type)})" for layer in layers if not config.can_run_on_DLA(layer)
    ]


def _type_name(value: Any) -> str:
    return str(getattr(value, "name", value))


def start_builder(trt: ModuleType, logger: Any) -> Any:
    """``trt.Builder(logger)``; without a usable GPU TensorRT cannot start (CUDA initialization)."""
    try:
        return trt.Builder(logger)
    except (TypeError, RuntimeError) as e:  # pybind11: "factory function returned nullptr"
        raise EngineBuildError(
            f"TensorRT's builder could not start: no usable GPU or CUDA driver ({e})",
            problems=logger.errors(),
            hint="build on the machine that runs the engine; `mmexport doctor` shows what this one has",
        ) from e


def build_plan(trt: ModuleType, onnx_path: Path, settings: BuilderSettings) -> Plan:
    """Parse, configure and build; EngineBuildError (with TensorRT's own errors) on failure."""
    logger = make_logger(trt)
    builder = start_builder(trt, logger)
    network = builder.create_network(network_flags(trt, settings.strongly_typed))
    parser = parse_onnx(trt, network, logger, onnx_path)
    config = builder.create_builder_config()
    notes = configure(trt, builder, config, settings)
    added = add_profiles(trt, builder, config, network, settings.profiles)
    if settings.calibrator is not None:
        config.set_calibration_profile(added[0])
    fallback = gpu_fallback(config, network) if settings.dla_core is not None else []
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(
            "TensorRT failed to build the engine; nothing was written",
            problems=logger.errors(),
            hint="lower --opt-level or raise --workspace if it ran out of memory; --debug for the traceback",
        )
    cache = config.get_timing_cache() if settings.timing_cache is not None else None
    del parser  # the parser owns the network's weights until the plan exists
    return Plan(
        data=bytes(memoryview(serialized)),
        timing_cache=bytes(memoryview(cache.serialize())) if cache is not None else None,
        gpu_fallback=fallback,
        notes=notes,
    )
