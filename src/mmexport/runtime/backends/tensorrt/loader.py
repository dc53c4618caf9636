"""Open a TensorRT engine: read its manifest, check it against this machine, deserialize it.

An engine runs only where it was built (same TensorRT version, GPU compute capability and
platform) unless it was built version-compatible or hardware-compatible. TensorRT's own refusal
is a long log line after a slow load; this check comes first and says what to do instead.
"""

from __future__ import annotations

import platform as _platform
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from mmexport.core.errors import ArtifactError, BackendError
from mmexport.core.manifest import Manifest, manifest_path
from mmexport.runtime.backends.tensorrt.api import import_tensorrt, parse_version
from mmexport.runtime.backends.tensorrt.engine_info import UNKNOWN, EngineInfo


@dataclass(frozen=True)
class Machine:
    """What an engine is checked against: the running TensorRT, the GPU and the platform."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    platform: str

    def describe(self) -> str:
        return (
            f"TensorRT {self.tensorrt_version}, {self.gpu_name} "
            f"(compute capability {self.compute_capability}), {self.platform}"
        )


def machine_platform(root: Path = Path("/")) -> str:
    """``linux-x86_64``, ``linux-sbsa`` (aarch64 servers) or ``linux-aarch64-jetson``, as in targets."""
    system = _platform.system().lower()
    machine = _platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        if (root / "etc" / "nv_tegra_release").exists():
            return f"{system}-aarch64-jetson"
        return f"{system}-sbsa"
    return f"{system}-{machine}"


def engine_info(path: Path, manifest: Manifest | None) -> EngineInfo:
    """The manifest's ``producer["engine"]``; an engine without a manifest cannot be checked or run."""
    where = str(manifest_path(path))
    if manifest is None:
        raise ArtifactError(
            str(path),
            "has no manifest (its .json), so its inputs and build machine are unknown",
            hint="build engines with `mmexport build`, which writes one",
        )
    if manifest.kind != "engine":
        raise ArtifactError(where, f"describes a {manifest.kind!r} artifact, not an engine")
    return EngineInfo.from_dict(manifest.producer.engine, where=where)


def rebuild_command(path: Path, info: EngineInfo) -> str:
    source = info.source_onnx or "<model.onnx>"
    return f"mmexport build {source} --target {info.target} -o {path}"


def mismatches(info: EngineInfo, machine: Machine) -> list[str]:
    """Why this engine cannot run here (empty: it can), one phrase per reason."""
    problems = []
    built, running = parse_version(info.tensorrt_version), parse_version(machine.tensorrt_version)
    if info.version_compatible:
        if not version_compatible_runs(built, running):
            problems.append(
                f"a version-compatible engine from TensorRT {info.tensorrt_version} runs on "
                f"{describe_compatible(built)}, not on {machine.tensorrt_version}"
            )
    elif built[:3] != running[:3] or (len(built) > 3 and len(running) > 3 and built != running):
        problems.append(f"TensorRT {info.tensorrt_version} built it, this is {machine.tensorrt_version}")
    cc_problem = compute_capability_mismatch(info, machine)
    if cc_problem is not None:
        problems.append(cc_problem)
    if info.platform != machine.platform:
        problems.append(f"it was built on {info.platform}, this is {machine.platform}")
    return problems


# A version-compatible engine built with TensorRT <key>.x also runs on these later majors, from
# the version given. NVIDIA's "Engine Compatibility" page (11.1) and support matrix (11.4): "engines
# built with TensorRT 10 work with TensorRT 11"; no other pair of majors among those mmexport runs.
LATER_MAJORS: dict[int, tuple[int, ...]] = {10: (11, 0)}


def version_compatible_runs(built: tuple[int, ...], running: tuple[int, ...]) -> bool:
    """Whether a version-compatible engine built by TensorRT ``built`` runs on ``running``: a
    later (or the same) release of its major, or a later major from the release that allows it."""
    if not built or not running:
        return False
    if built[0] == running[0]:
        return running >= built
    since = LATER_MAJORS.get(built[0])
    return since is not None and running[0] == since[0] and running >= since


def describe_compatible(built: tuple[int, ...]) -> str:
    if not built:
        return "the TensorRT versions it allows"
    text = f"TensorRT {built[0]}.x from {'.'.join(map(str, built))} on"
    since = LATER_MAJORS.get(built[0])
    return f"{text} and {'.'.join(map(str, since))}+" if since else text


def compute_capability_mismatch(info: EngineInfo, machine: Machine) -> str | None:
    """Why this GPU cannot run the engine; None when it can, or when the manifest does not say."""
    cc_here = _cc(machine.compute_capability)
    if info.hardware_compat == "ampere+":
        if cc_here < (8, 0):
            return (
                f"an ampere+ engine needs compute capability 8.0 or newer, this GPU has "
                f"{machine.compute_capability}"
            )
        return None
    if info.compute_capability == UNKNOWN or _cc(info.compute_capability) == cc_here:
        return None
    return (
        f"it was built for compute capability {info.compute_capability} ({info.gpu_name}), this GPU "
        f"has {machine.compute_capability} ({machine.gpu_name})"
    )


def unchecked(info: EngineInfo) -> list[str]:
    """What the manifest leaves unknown, so that it is not compared (engines from older builds)."""
    if info.compute_capability == UNKNOWN and info.hardware_compat != "ampere+":
        return [
            "its manifest does not record the GPU's compute capability (built without cuda-python "
            "or a CUDA torch); not compared, TensorRT refuses the engine if it was built for another GPU"
        ]
    return []


def check_engine(path: Path, info: EngineInfo, machine: Machine) -> None:
    """Refuse an engine built for another machine, with what it was built for and how to rebuild;
    warn about what the manifest does not say."""
    for note in unchecked(info):
        warnings.warn(f"{path}: {note}", UserWarning, stacklevel=2)
    problems = mismatches(info, machine)
    if problems:
        built_for = (
            f"TensorRT {info.tensorrt_version}, {info.gpu_name} (compute capability "
            f"{info.compute_capability}), {info.platform}, target {info.target}"
        )
        raise ArtifactError(
            str(path),
            f"cannot run here: {'; '.join(problems)} (built for {built_for}; this machine: "
            f"{machine.describe()})",
            hint=f"rebuild it on this machine: {rebuild_command(path, info)}",
        )


def read_plan(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ArtifactError(str(path), f"cannot be read: {e.strerror}") from e


def deserialize(trt: ModuleType, path: Path, info: EngineInfo) -> tuple[Any, Any]:
    """The runtime and the engine; a version-compatible engine carries its own lean runtime."""
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = start_runtime(trt, logger)
    if info.version_compatible:
        runtime.engine_host_code_allowed = True
    if info.dla_core is not None:
        select_dla_core(runtime, path, info)
    engine = runtime.deserialize_cuda_engine(read_plan(path))
    if engine is None:
        raise BackendError(
            "tensorrt",
            f"TensorRT could not deserialize {path} (see its log above)",
            hint=f"rebuild it: {rebuild_command(path, info)}",
        )
    return runtime, engine


def select_dla_core(runtime: Any, path: Path, info: EngineInfo) -> None:
    """An engine runs on the DLA core the runtime has selected when it is deserialized (TensorRT's
    default is core 0): select the one it was built for, as ``trtexec --useDLACore`` does."""
    core, cores = int(info.dla_core or 0), int(runtime.num_DLA_cores)
    if not 0 <= core < cores:
        raise ArtifactError(
            str(path),
            f"was built for DLA core {core}, this machine has {cores} DLA core(s)",
            hint=f"rebuild it for a core that exists: {rebuild_command(path, info)} --dla-core N",
        )
    runtime.DLA_core = core


def start_runtime(trt: ModuleType, logger: Any) -> Any:
    """``trt.Runtime(logger)``; without a usable GPU TensorRT cannot start (CUDA initialization)."""
    try:
        return trt.Runtime(logger)
    except (TypeError, RuntimeError) as e:  # pybind11: "factory function returned nullptr"
        raise BackendError(
            "tensorrt",
            f"TensorRT's runtime could not start: no usable GPU or CUDA driver ({e})",
            hint="`mmexport doctor` shows what this machine has",
        ) from e


def load_tensorrt() -> ModuleType:
    jetson = machine_platform().endswith("jetson")
    return import_tensorrt("running TensorRT engines", jetson=jetson)


def _cc(text: str) -> tuple[int, ...]:
    return parse_version(str(text)) or (0,)
