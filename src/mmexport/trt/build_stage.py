"""``mmexport build``: an ONNX artifact and its manifest in, a TensorRT plan and its manifest out.

Order: read the ONNX and its manifest, check the options against the target and the installed
TensorRT, run the offline check, derive the profiles, build, then stage the plan and publish it
with its manifest last. Any failure leaves no engine and no manifest; the timing cache is saved
only after a successful build. The plan is TensorRT's raw bytes (no header of ours), so trtexec,
Triton and DeepStream load it as is; what it was built for lives in the manifest.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmexport.core.artifact import LoadedArtifact
from mmexport.core.errors import ArtifactError, MissingDependencyError, MmexportError
from mmexport.core.files import atomic_write_bytes, output_folder, sha256_file, staging_dir
from mmexport.core.manifest import ArtifactKind, Manifest, Producer, publish_artifact
from mmexport.precision.common import SourceModel, load_source_model
from mmexport.runtime.backends.tensorrt.api import generation, import_tensorrt
from mmexport.runtime.backends.tensorrt.engine_info import EngineInfo
from mmexport.trt import build_options as opts
from mmexport.trt.builder import BuilderSettings, Plan, build_plan
from mmexport.trt.calibrator import CalibrationCache, find_cache, load_cache, make_calibrator
from mmexport.trt.profiles import build_profiles

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    path: Path
    manifest: Manifest
    info: EngineInfo
    notes: list[str] = field(default_factory=list)
    gpu_fallback: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "engine": self.info.to_dict(),
            "bytes": self.path.stat().st_size if self.path.exists() else None,
            "gpu_fallback": self.gpu_fallback,
            "notes": self.notes,
        }


def build_engine(
    model: str | Path | LoadedArtifact, output: str | Path, options: opts.BuildOptions
) -> BuildResult:
    """Build ``output`` (a TensorRT plan) from the ONNX artifact ``model``; see the module doc."""
    source = load_source_model(model, require=None)
    jetson = options.target.is_jetson or current_platform().endswith("jetson")
    trt = import_tensorrt("building TensorRT engines", jetson=jetson)
    gpu = gpu_identity()  # before the slow build: the manifest must name the GPU it is tied to
    gen, version = generation(trt), str(trt.__version__)
    opts.check_against_target(options, gen, version)
    opts.check_build_machine(options.target, current_platform(), *gpu)
    opts.check_hardware_compat(_member_names(trt.HardwareCompatibilityLevel), options, version)
    precision, flags = opts.builder_precision(options, gen, source.manifest.precision)
    if options.version_compatible:
        flags = (*flags, "VERSION_COMPATIBLE")
    notes = run_offline_check(source, options, version)
    profiles = build_profiles(source.spec, options.profiles, static_at=options.static_shapes)
    opts.check_dla_profiles(options, profiles)
    calibration = (
        load_cache(find_cache(source.path, options.int8_calib), version) if "INT8" in flags else None
    )
    if calibration is not None:
        notes += calibration.notes
        log.info(f"implicit INT8 from {calibration.path.name} ({calibration.tensors} tensors)")
    settings = BuilderSettings(
        profiles=profiles,
        builder_flags=flags,
        workspace_bytes=options.workspace,
        opt_level=options.optimization_level,
        hardware_compat=options.hardware_compat,
        dla_core=options.dla_core,
        timing_cache=_read_timing_cache(options.timing_cache),
        timing_cache_name=options.timing_cache.name if options.timing_cache is not None else None,
        calibrator=make_calibrator(trt, calibration) if calibration is not None else None,
    )
    log.info(
        f"building {precision} engine for {options.target.name}: "
        f"TensorRT {version}, {len(profiles)} profile(s)"
    )
    started = time.perf_counter()
    plan = build_plan(trt, source.path, settings)
    seconds = round(time.perf_counter() - started, 3)
    notes += plan.notes
    info = EngineInfo(
        tensorrt_version=version,
        gpu_name=gpu[0],
        compute_capability=gpu[1],
        platform=current_platform(),
        target=options.target.name,
        precision=precision,
        profiles=[p.to_dict() for p in profiles],
        hardware_compat=options.hardware_compat,
        version_compatible=options.version_compatible,
        dla_core=options.dla_core,
        build_seconds=seconds,
        source_onnx=str(source.path),
        source_sha256=source.sha256,
        builder_flags=list(flags),
        strongly_typed=settings.strongly_typed,
        workspace_bytes=settings.workspace_bytes,
        opt_level=settings.opt_level,
        gpu_fallback=plan.gpu_fallback,
    )
    manifest = engine_manifest(source, info, calibration)
    path = write_engine(plan, output, manifest)
    if options.timing_cache is not None and plan.timing_cache is not None:
        write_bytes_atomically(options.timing_cache, plan.timing_cache)
    return BuildResult(path, manifest, info, notes, plan.gpu_fallback)


def run_offline_check(source: SourceModel, options: opts.BuildOptions, version: str) -> list[str]:
    """``mmexport check`` before parsing: refuse on errors, pass warnings on as notes."""
    try:
        from mmexport.trt.check import check_onnx
    except ImportError:  # the offline check is optional for the build
        return ["offline check skipped: mmexport.trt.check is not available"]
    # the graph alone: its weights stay in the file, out of memory while TensorRT builds
    report = check_onnx(source.graph.proto, options.target, spec=source.spec, tensorrt_version=version)
    report.raise_for_errors()
    log.info(f"offline check: {report.summary()}")
    return [f.to_text() for f in report.warnings]


def _member_names(enum_type: Any) -> set[str]:
    return {n for n in dir(enum_type) if n.isupper()}


def _read_timing_cache(path: Path | None) -> bytes | None:
    """The cache's bytes if the file exists, b"" (a new cache) if not, None without --timing-cache."""
    if path is None:
        return None
    try:
        return path.read_bytes() if path.exists() else b""
    except OSError as e:
        raise ArtifactError(str(path), f"timing cache cannot be read: {e.strerror}") from e


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` in one step, so that builds sharing a timing cache never read half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def engine_manifest(source: SourceModel, info: EngineInfo, calibration: CalibrationCache | None) -> Manifest:
    producer = Producer.current("build", versions=False, engine=info.to_dict())
    if calibration is not None:
        producer.details["calibration_cache"] = {
            "file": calibration.path.name,
            "tensors": calibration.tensors,
        }
    return Manifest(
        kind=ArtifactKind.ENGINE,
        artifact="",
        sha256="",
        spec=source.spec,
        precision=info.precision,
        source=source.manifest.source.derived(source.path.name, source.sha256),
        producer=producer,
    )


def write_engine(plan: Plan, output: str | Path, manifest: Manifest) -> Path:
    """Stage the plan, move it into place, then write its manifest."""
    with output_folder(output) as out, staging_dir(out) as stage:
        staged = stage / out.name
        staged.write_bytes(plan.data)
        manifest.sha256 = sha256_file(staged)
        manifest.artifact = out.name
        publish_artifact(staged, out, manifest)
    return out


def current_platform() -> str:
    """``linux-x86_64``, ``linux-sbsa`` or ``linux-aarch64-jetson``, as the runtime compares them."""
    from mmexport.runtime.backends.tensorrt.loader import machine_platform

    return machine_platform()


def gpu_identity() -> tuple[str, str]:
    """(GPU name, compute capability) from cuda-python, else from a CUDA build of torch.

    TensorRT's Python API does not name the GPU, and an engine runs only on the compute
    capability it was built for: without either source the build stops (MissingDependencyError
    naming the ``gpu`` extra) rather than write a manifest the runtime cannot check.
    """
    from mmexport.runtime.backends.tensorrt.cuda import Cuda, import_cudart

    try:
        cudart = import_cudart("recording the GPU a TensorRT engine is built for")
    except MissingDependencyError:
        found = torch_gpu()
        if found is None:
            raise
        return found
    try:
        return Cuda(cudart).device()
    except MmexportError:  # cuda-python present, CUDA unusable: torch may still see the GPU
        found = torch_gpu()
        if found is None:
            raise
        return found


def torch_gpu() -> tuple[str, str] | None:
    """GPU 0's name and compute capability from torch, when torch is installed and sees CUDA."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return torch.cuda.get_device_name(0), f"{major}.{minor}"
    except (ImportError, RuntimeError):
        pass
    return None
