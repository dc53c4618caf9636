"""What an engine manifest says about the engine: the contract between ``build`` and the runtime.

An engine is tied to the TensorRT version, the GPU's compute capability and the platform it was
built on (unless built version-compatible / hardware-compatible); the runtime compares these with
the running machine before deserializing, and refuses a mismatch with the command to rebuild.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mmexport.core.errors import ArtifactError

UNKNOWN = "unknown"  # what older builds recorded when they could not read the GPU


@dataclass(frozen=True)
class EngineInfo:
    """Stored in the engine manifest's ``producer["engine"]``."""

    tensorrt_version: str  # e.g. "10.3.0"
    gpu_name: str  # e.g. "Orin (nvgpu)"
    compute_capability: str  # e.g. "8.7"
    platform: str  # e.g. "linux-aarch64-jetson", "linux-x86_64"
    target: str  # a name from mmexport.trt.targets
    precision: str  # "fp32", "fp16", "int8" (what the ONNX or the builder flags gave)
    profiles: list[dict[str, list[list[int]]]] = field(default_factory=list)  # input -> [min, opt, max]
    hardware_compat: str | None = None  # None, "ampere+" or "same-cc"
    version_compatible: bool = False
    dla_core: int | None = None
    build_seconds: float | None = None
    source_onnx: str | None = None
    source_sha256: str | None = None
    # Added by `mmexport build` (defaults keep older manifests readable):
    builder_flags: list[str] = field(default_factory=list)  # BuilderFlag names set, e.g. ["FP16"]
    strongly_typed: bool = True  # False: TensorRT 10 weak typing for --precision fp16 / implicit INT8
    workspace_bytes: int | None = None  # builder workspace cap (None: TensorRT's default)
    opt_level: int | None = None  # builder optimization level 0-5
    gpu_fallback: list[str] = field(default_factory=list)  # DLA builds: layers left on the GPU

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> EngineInfo:
        if not isinstance(data, dict):
            raise ArtifactError(where, "engine manifest lacks its 'engine' section")
        missing = [
            k for k in ("tensorrt_version", "gpu_name", "compute_capability", "platform") if k not in data
        ]
        if missing:
            raise ArtifactError(where, f"engine manifest lacks {', '.join(missing)}")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
