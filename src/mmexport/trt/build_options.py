"""``mmexport build`` options, checked against the target and the TensorRT generation before any work.

TensorRT 10 and 11 differ in what a build may ask for: 10 has BuilderFlag.FP16/INT8 and
calibrators (on a weakly typed network), 11 takes precision from the ONNX only. Each refusal says
why and what to run instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mmexport.core.errors import EngineBuildError
from mmexport.runtime.backends.tensorrt.api import parse_version
from mmexport.trt.builder import HARDWARE_COMPAT
from mmexport.trt.profiles import Profile
from mmexport.trt.targets import Target

PRECISIONS = ("fp16", "int8")  # builder-flag precisions (TensorRT 10 only)
# TensorRT releases with DLA: 10.x up to 10.7 (JetPack 6), none in 11.0-11.4.0, then 11.4.1 on AGX
# Orin with JetPack 7.2.2. Jetson itself: TensorRT 10.x, and 11.x only from 11.4.1 (JetPack 7.2.2).
LAST_10_WITH_DLA = (10, 7)
FIRST_11_ON_JETSON = (11, 4, 1)
DLA_WITH_11 = ("jetson-orin",)  # AGX Orin (JetPack 7.2.2)
DLA_RELEASES = "TensorRT 10.0-10.7 (JetPack 6) or 11.4.1+ on AGX Orin (JetPack 7.2.2)"
# Compute capabilities one GPU reports under different CUDA releases: Thor is sm_110 under CUDA 13,
# sm_101 before (targets.py marks this unverified).
SAME_GPU = {"11.0": ("10.1",)}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class BuildOptions:
    """What the user asked for; None means the target's default (or the ONNX's precision)."""

    target: Target
    workspace_bytes: int | None = None
    opt_level: int | None = None
    timing_cache: Path | None = None
    hardware_compat: str | None = None  # a key of builder.HARDWARE_COMPAT
    version_compatible: bool = False
    dla_core: int | None = None
    profiles: tuple[str, ...] = ()  # extra --profile texts
    static_shapes: str | None = None  # "min", "opt" or "max"
    precision: str | None = None  # "fp16" / "int8" via TensorRT 10 builder flags
    int8_calib: Path | None = None

    @property
    def workspace(self) -> int | None:
        return self.workspace_bytes if self.workspace_bytes is not None else self.target.workspace_bytes

    @property
    def optimization_level(self) -> int:
        return self.opt_level if self.opt_level is not None else self.target.opt_level


def parse_size(text: str) -> int:
    """``2G`` / ``512M`` / ``1.5GiB`` / ``1048576`` -> bytes (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise EngineBuildError(f"size {text!r} is not a number with an optional K/M/G/T unit (e.g. 2G, 512M)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def builder_precision(
    options: BuildOptions, generation: int, onnx_precision: str
) -> tuple[str, tuple[str, ...]]:
    """(the engine's precision, the BuilderFlag names that give it)."""
    wanted = "int8" if options.int8_calib is not None else options.precision
    if wanted is None:
        return onnx_precision, ()
    if generation >= 11:
        command = "mmexport fp16" if wanted == "fp16" else "mmexport calibrate"
        raise EngineBuildError(
            f"--precision {wanted} / --int8-calib need TensorRT 10: TensorRT {generation} builds strongly "
            "typed networks only (BuilderFlag.FP16 and INT8 calibrators were removed), so precision "
            "comes from the ONNX",
            hint=f"run `{command} MODEL.onnx` and build its output",
        )
    if onnx_precision != "fp32":
        raise EngineBuildError(
            f"--precision {wanted} applies to an FP32 ONNX; this one is {onnx_precision} already",
            hint="drop --precision: the engine keeps the ONNX's precision",
        )
    # Implicit INT8: layers without a scale run in FP16 rather than FP32 (as trtexec --best does).
    return wanted, ("FP16",) if wanted == "fp16" else ("FP16", "INT8")


def check_against_target(options: BuildOptions, generation: int, tensorrt_version: str) -> None:
    """Refuse what the target or this TensorRT cannot do, before parsing anything."""
    target = options.target
    if generation not in target.generations:
        raise EngineBuildError(
            f"target {target.name} runs TensorRT {'/'.join(map(str, target.generations))}.x, "
            f"this is TensorRT {tensorrt_version}"
        )
    if options.opt_level is not None and not 0 <= options.opt_level <= 5:
        raise EngineBuildError(f"--opt-level must be 0-5, got {options.opt_level}")
    if options.hardware_compat is not None and options.hardware_compat not in HARDWARE_COMPAT:
        raise EngineBuildError(f"--hardware-compat must be one of {', '.join(HARDWARE_COMPAT)}")
    version = parse_version(tensorrt_version)
    if target.is_jetson and (11,) <= version < FIRST_11_ON_JETSON:
        raise EngineBuildError(
            f"target {target.name}: TensorRT {tensorrt_version} does not support Jetson (TensorRT 11 "
            "does from 11.4.1, with JetPack 7.2.2)",
            hint="use the TensorRT that JetPack installs on the device",
        )
    if options.dla_core is not None:
        if target.dla_cores == 0:
            raise EngineBuildError(f"target {target.name} has no DLA", hint="drop --dla-core")
        if not 0 <= options.dla_core < target.dla_cores:
            raise EngineBuildError(
                f"--dla-core {options.dla_core}: target {target.name} has DLA cores 0-{target.dla_cores - 1}"
            )
        if not dla_supported(target, version):
            raise EngineBuildError(
                f"--dla-core {options.dla_core}: TensorRT {tensorrt_version} has no DLA support for "
                f"target {target.name} (DLA needs {DLA_RELEASES})",
                hint="drop --dla-core to build for the GPU",
            )


def dla_supported(target: Target, version: tuple[int, ...]) -> bool:
    if version >= (10,) and version[:2] <= LAST_10_WITH_DLA:
        return True
    return version >= FIRST_11_ON_JETSON and target.name in DLA_WITH_11


def check_build_machine(target: Target, platform: str, gpu_name: str, compute_capability: str) -> None:
    """An engine runs only on the platform and compute capability it was built on, and TensorRT
    cannot cross-build for a Jetson (its RuntimePlatform offers only Windows from Linux x86):
    refuse a target that is not this machine, rather than label an engine with it."""
    on_jetson = platform.endswith("jetson")
    if target.is_jetson and not on_jetson:
        raise EngineBuildError(
            f"target {target.name} is a Jetson, this machine is {platform}: an engine built here would "
            "run only here (TensorRT cannot cross-build for Jetson)",
            hint="build on the Jetson itself; `mmexport bundle` packs the ONNX with a build script for it",
        )
    if on_jetson and not target.is_jetson:
        raise EngineBuildError(
            f"target {target.name} is a server GPU, this machine is a Jetson ({platform})",
            hint="use --target jetson-orin, jetson-orin-nano or jetson-thor",
        )
    wanted = target.compute_capability
    same = {wanted, *SAME_GPU.get(wanted or "", ())}
    if wanted is not None and compute_capability != "unknown" and compute_capability not in same:
        raise EngineBuildError(
            f"target {target.name} has compute capability {wanted}, this GPU ({gpu_name}) has "
            f"{compute_capability}",
            hint="choose the target that matches this machine",
        )


def check_hardware_compat(trt_level_names: set[str], options: BuildOptions, tensorrt_version: str) -> None:
    if options.hardware_compat is None:
        return
    level = HARDWARE_COMPAT[options.hardware_compat]
    if level not in trt_level_names:
        raise EngineBuildError(
            f"--hardware-compat {options.hardware_compat}: TensorRT {tensorrt_version} has no "
            f"HardwareCompatibilityLevel.{level} (later TensorRT releases added it)",
            hint="use --hardware-compat ampere+, or build on the machine that runs the engine",
        )


def check_dla_profiles(options: BuildOptions, profiles: list[Profile]) -> None:
    """DLA runs static shapes only: refuse a dynamic profile and offer --static-shapes."""
    if options.dla_core is None:
        return
    dynamic = [i for i, p in enumerate(profiles) if p.dynamic]
    if dynamic:
        dims = sorted({n for i in dynamic for n, r in profiles[i].dims.items() if r.min != r.max})
        raise EngineBuildError(
            f"DLA needs static shapes (min = opt = max), but profile(s) {dynamic} leave dims "
            f"{', '.join(dims)} dynamic",
            hint="add --static-shapes opt to build at the spec's opt point, or drop --dla-core",
        )
