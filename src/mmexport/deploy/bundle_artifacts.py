"""What goes into a bundle for one ONNX artifact: the file, its manifest, its external data and,
beside an INT8 model, TensorRT's native calibration cache; each checked before it is packed.

Engines are never bundled: a TensorRT plan is tied to the TensorRT version, GPU and platform it
was built on, so ``build.sh`` builds them on the device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mmexport.core.artifact import LoadedArtifact, load_artifact
from mmexport.core.errors import ArtifactError
from mmexport.core.files import sha256_file
from mmexport.core.manifest import ArtifactKind, Manifest, Precision, manifest_path
from mmexport.core.onnx_file import check_file, graph_tensors, read_onnx
from mmexport.core.spec import ModelSpec
from mmexport.deploy.archive import check_member_name

MODELS = "models"
ENGINES = "engines"
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


class ChecksumError(ArtifactError):
    """A file whose sha256 is not the one recorded for it (in its manifest or in bundle.json)."""

    def __init__(self, path: str, expected: str, actual: str, *, recorded_in: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            path,
            f"sha256 is {actual}, but {recorded_in} records {expected} (modified, damaged or mixed up)",
        )


@dataclass(frozen=True)
class Companion:
    """A file packed with an artifact: its path here and its name in the bundle."""

    path: Path
    name: str
    role: str  # "manifest", "external-data" or "calibration-cache"


@dataclass
class BundledArtifact:
    """One ONNX artifact, checked against its manifest, with the names it gets in the bundle."""

    path: Path
    manifest: Manifest
    sha256: str
    companions: list[Companion] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{MODELS}/{self.path.name}"

    @property
    def spec(self) -> ModelSpec:
        return self.manifest.spec

    @property
    def precision(self) -> str:
        return self.manifest.precision

    def engine_name(self, trt_target: str) -> str:
        return f"{ENGINES}/{self.path.stem}.{trt_target}.engine"

    def companion(self, role: str) -> Companion | None:
        return next((c for c in self.companions if c.role == role), None)

    @property
    def source_onnx(self) -> str | None:
        """The file name of the FP32 ONNX this variant was made from, per its manifest."""
        name = self.manifest.source.onnx
        return name if name is not None and name != self.path.name else None

    def to_dict(self, trt_target: str) -> dict[str, Any]:
        calib = self.companion("calibration-cache")
        return {
            "onnx": self.name,
            "manifest": f"{self.name}.json",
            "precision": self.precision,
            "sha256": self.sha256,
            "external_data": [c.name for c in self.companions if c.role == "external-data"],
            "calibration_cache": calib.name if calib is not None else None,
            "engine": self.engine_name(trt_target),
            "spec": self.spec.to_dict(),
        }


def collect_artifact(path: str | Path | LoadedArtifact) -> BundledArtifact:
    """Check ``path`` (an ONNX file with its manifest, unchanged since) and find its companions;
    a LoadedArtifact's manifest and hash are used as they are."""
    loaded = path if isinstance(path, LoadedArtifact) else None
    path = path.path if isinstance(path, LoadedArtifact) else Path(path)
    if path.suffix.lower() in ENGINE_SUFFIXES:
        raise ArtifactError(
            str(path),
            "is a TensorRT engine; engines must be built on the device: a plan is tied to the TensorRT "
            "version, GPU and platform it was built on, so a bundle carries the ONNX and build.sh builds it",
            hint="bundle the ONNX file the engine was built from",
        )
    check_file(path)
    if path.suffix.lower() != ".onnx":
        raise ArtifactError(str(path), "is not an ONNX file (.onnx); bundles carry ONNX models")
    check_inside(manifest_path(path), path)  # before anything is read through it
    loaded = loaded or load_artifact(path)
    manifest = loaded.manifest
    if manifest is None:
        raise ArtifactError(
            str(path),
            f"has no manifest ({path.name}.json)",
            hint="bundle files written by mmexport to-onnx, fp16 or calibrate",
        )
    if manifest.kind != ArtifactKind.ONNX:
        raise ArtifactError(str(path), f"has a manifest of kind {manifest.kind!r}, not 'onnx'")
    sha256 = loaded.sha256
    if sha256 != manifest.sha256:
        raise ChecksumError(str(path), manifest.sha256, sha256, recorded_in=manifest_path(path).name)
    artifact = BundledArtifact(path, manifest, sha256)
    artifact.companions.append(Companion(manifest_path(path), f"{artifact.name}.json", "manifest"))
    artifact.companions += [
        Companion(p, f"{MODELS}/{location}", "external-data") for location, p in external_data(path)
    ]
    cache = calibration_cache(path, manifest)
    if cache is not None:
        artifact.companions.append(Companion(cache, f"{MODELS}/{cache.name}", "calibration-cache"))
    for companion in artifact.companions:
        check_inside(companion.path, path)
    check_external_data(artifact)
    if cache is not None:
        check_calibration_cache(artifact, cache)
    return artifact


def check_inside(companion: Path, artifact: Path) -> None:
    """Refuse a companion file that is a symbolic link leading out of the artifact's folder: its
    target (any file the user can read) would be packed and shipped under the companion's name."""
    folder = Path(os.path.realpath(artifact.parent))
    target = Path(os.path.realpath(companion))
    if folder not in target.parents:
        how = "is a symbolic link" if companion.is_symlink() else "leads through a symbolic link"
        raise ArtifactError(
            str(companion),
            f"{how} to {target}, outside the model's folder {folder}; not packed",
            hint="copy the file itself beside the model",
        )


def check_calibration_cache(artifact: BundledArtifact, cache: Path) -> None:
    """The calibration cache's sha256 against the one the manifest records (older manifests lack it)."""
    recorded = artifact.manifest.producer.calibration_cache
    expected = recorded.get("sha256") if recorded is not None else None
    if not isinstance(expected, str):
        return
    actual = sha256_file(cache)
    if actual != expected:
        raise ChecksumError(str(cache), expected, actual, recorded_in=f"{artifact.path.name}.json")


def external_data(path: Path) -> list[tuple[str, Path]]:
    """(location, file) of every external data file the ONNX at ``path`` refers to."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    model = read_onnx(path, external_data=False)
    tensors = graph_tensors(model.graph)
    locations = sorted({ExternalDataInfo(t).location for t in tensors if uses_external_data(t)})
    found = []
    for location in locations:
        if check_member_name(location) is not None or PurePosixPath(location).is_absolute():
            raise ArtifactError(str(path), f"refers to external data outside its folder: {location!r}")
        data = path.parent / location
        if not data.is_file():
            raise ArtifactError(str(path), f"refers to external data {location!r}, which does not exist")
        found.append((location, data))
    return found


def check_external_data(artifact: BundledArtifact) -> None:
    """The external data file's sha256 against the one the manifest records (mmexport to-onnx)."""
    recorded = artifact.manifest.producer.external_data
    if recorded is None or not isinstance(recorded.get("sha256"), str):
        return
    for companion in artifact.companions:
        if companion.role == "external-data" and companion.path.name == recorded.get("file"):
            actual = sha256_file(companion.path)
            if actual != recorded["sha256"]:
                raise ChecksumError(
                    str(companion.path), recorded["sha256"], actual, recorded_in=f"{artifact.path.name}.json"
                )


def calibration_cache(path: Path, manifest: Manifest) -> Path | None:
    """The native cache beside an INT8 model: the manifest's ``calibration_cache`` or ``<stem>.calib``."""
    if manifest.precision != Precision.INT8:
        return None
    recorded = manifest.producer.calibration_cache
    name = recorded.get("file") if recorded is not None else None
    candidate = path.parent / (name if isinstance(name, str) and "/" not in name else f"{path.stem}.calib")
    return candidate if candidate.is_file() else None
