"""Manifests: the JSON file beside every artifact (``model.onnx`` -> ``model.onnx.json``).

A manifest holds the spec (in the spec file's form), what produced the artifact, the artifact's
sha256, and validation results, so that each stage reads the previous one and no flag is repeated.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from mmexport.errors import ArtifactError, SpecError
from mmexport.files import atomic_write_text, sha256_file
from mmexport.spec import ModelSpec

FORMAT = "mmexport.manifest"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 16 << 20


def manifest_path(artifact: str | Path) -> Path:
    return Path(f"{artifact}.json")


def package_versions(*names: str) -> dict[str, str | None]:
    """Installed versions of ``names`` (None where absent), plus Python's."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@dataclass
class Manifest:
    """What an artifact is, how it was made and how it was checked."""

    kind: str
    artifact: str
    sha256: str
    spec: ModelSpec
    precision: str
    producer: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "artifact": self.artifact,
            "sha256": self.sha256,
            "precision": self.precision,
            "created": self.created,
            "source": self.source,
            "producer": self.producer,
            "spec": self.spec.to_dict(),
            "validation": self.validation,
        }

    def write(self, artifact_path: str | Path) -> Path:
        path = manifest_path(artifact_path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> Manifest:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArtifactError(where, "is not an mmexport manifest")
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ArtifactError(
                where,
                f"has manifest format version {version!r}; this mmexport reads up to {FORMAT_VERSION}",
                hint="upgrade mmexport",
            )
        for key in ("kind", "artifact", "sha256", "spec", "precision"):
            if key not in data:
                raise ArtifactError(where, f"manifest lacks {key!r}")
        try:
            spec = ModelSpec.from_dict(data["spec"])
        except SpecError as e:
            raise ArtifactError(where, f"holds an invalid spec: {e}") from e
        for key in ("producer", "validation", "source"):
            if not isinstance(data.get(key, {}), dict):
                raise ArtifactError(where, f"manifest {key!r} must be an object")
        return cls(
            kind=data["kind"],
            artifact=data["artifact"],
            sha256=data["sha256"],
            spec=spec,
            precision=data["precision"],
            producer=data.get("producer", {}),
            validation=data.get("validation", {}),
            source=data.get("source", {}),
            created=data.get("created", ""),
        )


def read_manifest(artifact_path: str | Path) -> Manifest | None:
    """The manifest beside ``artifact_path``, or None if there is none."""
    path = manifest_path(artifact_path)
    if not path.exists():
        return None
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ArtifactError(str(path), f"is larger than {MAX_MANIFEST_BYTES >> 20} MiB; not a manifest")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(str(path), f"is not valid JSON ({e})") from e
    return Manifest.from_dict(data, where=str(path))


def verify_sha256(artifact_path: str | Path, manifest: Manifest) -> bool:
    return sha256_file(artifact_path) == manifest.sha256
