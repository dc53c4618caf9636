"""An artifact loaded once: its path, its manifest, its sha256 and (on demand) its ONNX proto.

A command reads a file's manifest, hashes it and parses it once, then passes this object to
every stage that needs any of them, instead of a path that each stage would read again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mmexport.core.errors import ArtifactError
from mmexport.core.files import sha256_file
from mmexport.core.manifest import Manifest, check_files, read_manifest
from mmexport.core.onnx_file import check_file, read_onnx

if TYPE_CHECKING:
    import onnx


@dataclass(eq=False)
class LoadedArtifact:
    """One artifact file; ``sha256`` and ``model`` are computed on first use, then kept."""

    path: Path
    manifest: Manifest | None
    _sha256: str | None = field(default=None, repr=False)
    _model: onnx.ModelProto | None = field(default=None, repr=False)
    _verified: bool = field(default=False, repr=False)

    @property
    def sha256(self) -> str:
        """The file's sha256, hashed once."""
        if self._sha256 is None:
            self._sha256 = sha256_file(self.path)
        return self._sha256

    @property
    def model(self) -> onnx.ModelProto:
        """The ONNX proto with its external weights, parsed once (refusing a graph without nodes)."""
        if self._model is None:
            self._model = read_onnx(self.path, nodes=True)
        return self._model

    @property
    def parsed(self) -> bool:
        """Whether the proto has been parsed already (so reading ``model`` costs nothing)."""
        return self._model is not None

    def verify(self) -> None:
        """Refuse a file (or its external data) that is not what its manifest records; once."""
        if self.manifest is not None and not self._verified:
            check_files(self.path, self.manifest, sha256=self.sha256)
            self._verified = True

    def require_manifest(self, hint: str) -> Manifest:
        """The manifest, or an ArtifactError saying the file has none."""
        if self.manifest is None:
            raise ArtifactError(str(self.path), f"has no manifest ({self.path.name}.json)", hint=hint)
        return self.manifest


def load_artifact(
    path: str | Path | LoadedArtifact,
    *,
    manifest: Manifest | None = None,
    sha256: str | None = None,
    model: onnx.ModelProto | None = None,
) -> LoadedArtifact:
    """``path`` and its manifest (read once; None when there is none); a LoadedArtifact passes
    through. ``manifest``, ``sha256``, ``model``: what the caller holds already (a stage that
    has just written the file)."""
    if isinstance(path, LoadedArtifact):
        return path
    path = check_file(path)
    found = manifest if manifest is not None else read_manifest(path)
    return LoadedArtifact(path, found, sha256, model, _verified=sha256 is not None and manifest is not None)
