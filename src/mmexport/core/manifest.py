"""Manifests: the JSON file beside every artifact (``model.onnx`` -> ``model.onnx.json``).

A manifest holds the spec (in the spec file's form), what produced the artifact, the artifact's
sha256, and validation results, so that each stage reads the previous one and no flag is repeated.
Its sections are typed (``Producer``, ``Source``, ``Validation``); their JSON is what earlier
versions wrote, and keys this version does not know are kept as they are.

Manifests travel with artifacts (bundles, copies to a device), so reading one treats it as
untrusted (``mmexport.core.json_limits``: a size limit, a nesting limit, string and integer limits, no
duplicate keys, no NaN/Infinity), with a type for every top-level field and no unknown ones; each
failure is one ``ArtifactError`` naming the file.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from enum import Enum
from importlib import metadata
from pathlib import Path
from typing import Any

from mmexport.core.errors import ArtifactError, SpecError
from mmexport.core.files import atomic_write_text, fsync_folder, publish, sha256_file, uninterrupted, utc_now
from mmexport.core.json_limits import check_format, dumps_finite, read_json_limited
from mmexport.core.manifest_checks import FORMAT_VERSION, check_fields
from mmexport.core.spec import ModelSpec

FORMAT = "mmexport.core.manifest"
MAX_MANIFEST_BYTES = 16 << 20
WHAT = "an mmexport manifest"


def manifest_path(artifact: str | Path) -> Path:
    return Path(f"{artifact}.json")


def publish_artifact(
    staged: Path, final_path: Path, manifest: Manifest, *, companions: tuple[str, ...] = ()
) -> Path:
    """Move a staged artifact (and its companions) into place, then its manifest, with Ctrl-C held
    back in between; returns the manifest's path. The manifest is written in the staging folder
    first, so that a full disk fails there, before anything is moved (moves need no space)."""
    staged_manifest = manifest.write(staged, output=final_path)
    with uninterrupted():
        publish(staged, final_path, companions=companions)
        return place_manifest(staged_manifest, final_path)


def place_manifest(staged_manifest: Path, final_path: Path) -> Path:
    """Move a manifest written beside the staged artifact to its place beside ``final_path``."""
    path = manifest_path(final_path)
    os.replace(staged_manifest, path)
    fsync_folder(path.parent)
    return path


class _Text(str, Enum):
    """A str-valued enum that prints, formats and serializes as its value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)


class Precision(_Text):
    """An artifact's numeric precision, as manifests record it."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class ArtifactKind(_Text):
    """What a manifest describes: an ONNX file or a TensorRT plan."""

    ONNX = "onnx"
    ENGINE = "engine"


class CalibrationMethod(_Text):
    """How INT8 activation ranges are chosen from the calibration statistics."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


# The libraries every producer section records; onnxruntime under either distribution name.
LIBRARIES = ("torch", "onnx", "onnxslim", "onnxruntime", "tensorrt")
_DISTRIBUTIONS = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "tensorrt": ("tensorrt", "tensorrt-cu12"),
}


def package_versions(*names: str) -> dict[str, str | None]:
    """Installed versions of ``names`` (None where absent), plus Python's."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        out[name] = None
        for dist in _DISTRIBUTIONS.get(name, (name,)):
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


@dataclass
class Producer:
    """What made an artifact: the tool, its stage, library versions, and the stage's own record
    (``details``, in the order it was written: exporter, opset, method, engine, ...)."""

    tool: str | None = None
    version: str | None = None
    stage: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] | None = None

    @classmethod
    def current(cls, stage: str, **details: Any) -> Producer:
        """This mmexport as the producer of ``stage``, with the versions of ``LIBRARIES``."""
        import mmexport

        return cls("mmexport", mmexport.__version__, stage, dict(details), package_versions(*LIBRARIES))

    @property
    def exporter(self) -> str | None:
        value = self.details.get("exporter")
        return value if isinstance(value, str) else None

    @property
    def external_data(self) -> dict[str, Any] | None:
        """``{"file": ..., "sha256": ...}`` when the ONNX keeps its weights in a file beside it."""
        value = self.details.get("external_data")
        return value if isinstance(value, dict) else None

    @property
    def engine(self) -> Any:
        """A TensorRT plan's build record (read by the runtime's EngineInfo), else None."""
        return self.details.get("engine")

    @property
    def calibration_cache(self) -> dict[str, Any] | None:
        """``{"file": ..., "trt_version": ..., "sha256": ...}`` beside an INT8 ONNX; manifests written
        before ``sha256`` was recorded lack it and are still read."""
        value = self.details.get("calibration_cache")
        return value if isinstance(value, dict) else None

    def to_dict(self) -> dict[str, Any]:
        head = {"tool": self.tool, "version": self.version, "stage": self.stage}
        out: dict[str, Any] = {k: v for k, v in head.items() if v is not None}
        out.update(self.details)
        if self.versions is not None:
            out["versions"] = self.versions
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Producer:
        rest = dict(data)
        tool, version, stage = (_pop_text(rest, k) for k in ("tool", "version", "stage"))
        versions = rest.pop("versions") if isinstance(rest.get("versions"), dict) else None
        return cls(tool, version, stage, rest, versions)


def _pop_text(data: dict[str, Any], key: str) -> str | None:
    return data.pop(key) if isinstance(data.get(key), str) else None


_SOURCE_TEXT = ("model", "part", "composition", "onnx", "onnx_sha256", "manifest")


@dataclass
class Source:
    """Where an artifact came from: the model reference, the ONNX it was made from (and its
    hash), the split part; ``extra`` keeps keys this version does not know."""

    model: str | None = None
    builtin: bool | None = None
    part: str | None = None
    composition: str | None = None
    onnx: str | None = None
    onnx_sha256: str | None = None
    manifest: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def builtin_name(self) -> str | None:
        """The built-in model's name when the artifact was exported from one."""
        return self.model if self.builtin is True else None

    def derived(self, onnx: str, onnx_sha256: str) -> Source:
        """This source, for an artifact made from the ONNX ``onnx``."""
        return Source(
            self.model,
            self.builtin,
            self.part,
            self.composition,
            onnx,
            onnx_sha256,
            self.manifest,
            dict(self.extra),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "builtin": self.builtin}
        out.update({k: getattr(self, k) for k in _SOURCE_TEXT[1:]})
        out = {k: v for k, v in out.items() if v is not None}
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Source:
        rest = dict(data)
        texts = {k: _pop_text(rest, k) for k in _SOURCE_TEXT}
        builtin = rest.pop("builtin") if isinstance(rest.get("builtin"), bool) else None
        return cls(builtin=builtin, extra=rest, **texts)


@dataclass
class Validation:
    """How an artifact was checked: the parity gate, the FP16 check, per-branch sensitivity and
    accuracy (each the JSON form of its report; None where not run)."""

    parity: dict[str, Any] | None = None
    fp16_check: dict[str, Any] | None = None
    sensitivity: list[Any] | None = None
    accuracy: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("parity", "fp16_check", "sensitivity", "accuracy")}
        out = {k: v for k, v in out.items() if v is not None}
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Validation:
        rest = dict(data)
        found = {
            k: rest.pop(k) if isinstance(rest.get(k), dict) else None
            for k in ("parity", "fp16_check", "accuracy")
        }
        sensitivity = rest.pop("sensitivity") if isinstance(rest.get("sensitivity"), list) else None
        return cls(sensitivity=sensitivity, extra=rest, **found)


@dataclass
class Manifest:
    """What an artifact is, how it was made and how it was checked."""

    kind: str
    artifact: str
    sha256: str
    spec: ModelSpec
    precision: str
    producer: Producer = field(default_factory=Producer)
    validation: Validation = field(default_factory=Validation)
    source: Source = field(default_factory=Source)
    created: str = field(default_factory=utc_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "artifact": self.artifact,
            "sha256": self.sha256,
            "precision": self.precision,
            "created": self.created,
            "source": self.source.to_dict(),
            "producer": self.producer.to_dict(),
            "spec": self.spec.to_dict(),
            "validation": self.validation.to_dict(),
        }

    def write(self, artifact_path: str | Path, *, output: str | Path | None = None) -> Path:
        """Write the manifest beside ``artifact_path``; ``output``: the artifact errors name (a
        staged artifact's final path)."""
        path = manifest_path(artifact_path)
        atomic_write_text(path, dumps_finite(self.to_dict()), output=output)
        return path

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> Manifest:
        """A manifest from JSON read by ``read_json_limited`` (which bounds its size and nesting)."""
        check_format(data, where, name=FORMAT, newest=FORMAT_VERSION, what=WHAT)
        check_fields(data, where)
        try:
            spec = ModelSpec.from_dict(data["spec"])
        except SpecError as e:
            raise ArtifactError(where, f"holds an invalid spec: {e}") from e
        return cls(
            kind=data["kind"],
            artifact=data["artifact"],
            sha256=data["sha256"],
            spec=spec,
            precision=data["precision"],
            producer=Producer.from_dict(data.get("producer", {})),
            validation=Validation.from_dict(data.get("validation", {})),
            source=Source.from_dict(data.get("source", {})),
            created=data.get("created", ""),
        )


def read_manifest(artifact_path: str | Path) -> Manifest | None:
    """The manifest beside ``artifact_path``, or None if there is none."""
    path = manifest_path(artifact_path)
    if not path.exists() and not path.is_symlink():
        return None
    data = read_json_limited(path, what=WHAT, max_bytes=MAX_MANIFEST_BYTES)
    return Manifest.from_dict(data, where=str(path))


def verify_sha256(artifact_path: str | Path, manifest: Manifest) -> bool:
    return sha256_file(artifact_path) == manifest.sha256


def external_data_file(artifact_path: str | Path, manifest: Manifest) -> tuple[Path, str | None] | None:
    """The external data file a manifest records beside its ONNX (``producer.external_data``) and
    its recorded sha256; None when the artifact keeps its weights inside."""
    recorded = manifest.producer.external_data
    if recorded is None:
        return None
    where = str(manifest_path(artifact_path))
    name = recorded.get("file")
    if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ArtifactError(where, f"external data 'file' must be a file name without a folder, got {name!r}")
    digest = recorded.get("sha256")
    return Path(artifact_path).parent / name, digest if isinstance(digest, str) else None


def check_files(artifact_path: str | Path, manifest: Manifest, *, sha256: str | None = None) -> None:
    """Refuse an artifact, or its external data file, that is not what its manifest records.

    ``sha256``: the artifact's hash when the caller has it already (else it is computed)."""
    actual = sha256 if sha256 is not None else sha256_file(artifact_path)
    if actual != manifest.sha256:
        raise ArtifactError(str(artifact_path), "does not match the sha256 in its manifest (modified since?)")
    data = external_data_file(artifact_path, manifest)
    if data is None:
        return
    require_external_data(data[0])
    if data[1] is not None and sha256_file(data[0]) != data[1]:
        raise ArtifactError(
            str(data[0]),
            f"does not match the sha256 in {manifest_path(artifact_path).name} (modified since?)",
        )


def require_external_data(path: Path) -> None:
    """The external data file must be there, as a file (checked before a loader fails on it)."""
    if not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "is missing"
        raise ArtifactError(
            str(path), f"{problem}: its ONNX keeps its weights there", hint="copy it beside the .onnx file"
        )
