"""``LoadedArtifact``: a file's manifest read, hash computed and proto parsed once, then shared."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mmexport.core import artifact as artifact_module
from mmexport.core import manifest as manifest_module
from mmexport.core.artifact import load_artifact
from mmexport.core.errors import ArtifactError
from mmexport.runtime import Session
from mmexport.runtime import session as session_module
from runtime.onnx_models import feeds, write_tiny


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    counts: Counter[str] = Counter()

    def counting(module: Any, name: str) -> None:
        original = getattr(module, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)

    counting(artifact_module, "sha256_file")
    counting(artifact_module, "read_onnx")
    counting(artifact_module, "read_manifest")
    counting(manifest_module, "sha256_file")  # check_files hashes here when no hash is given
    counting(session_module, "read_manifest")
    return counts


def test_hash_and_proto_are_computed_once(tmp_path: Path, calls: Counter[str]) -> None:
    loaded = load_artifact(write_tiny(tmp_path))
    assert loaded.manifest is not None and not loaded.parsed
    assert loaded.sha256 == loaded.manifest.sha256 == loaded.sha256
    assert loaded.model is loaded.model and loaded.parsed
    loaded.verify()
    loaded.verify()
    assert load_artifact(loaded) is loaded
    assert calls == Counter(read_manifest=1, sha256_file=1, read_onnx=1)


def test_a_session_opens_a_loaded_artifact_without_reading_it_again(
    tmp_path: Path, calls: Counter[str]
) -> None:
    loaded = load_artifact(write_tiny(tmp_path))
    with Session(loaded, verify_sha256=True) as session:
        assert session.run(feeds())["logits"].shape == (2, 4)
        assert session.manifest is loaded.manifest and session.path == loaded.path
    assert calls == Counter(read_manifest=1, sha256_file=1)  # load_artifact's; the Session added none


def test_verify_refuses_a_modified_file(tmp_path: Path) -> None:
    path = write_tiny(tmp_path)
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ArtifactError, match="does not match the sha256 in its manifest"):
        load_artifact(path).verify()


def test_missing_file_and_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "none.onnx")
    bare = load_artifact(write_tiny(tmp_path, manifest=False))
    assert bare.manifest is None
    with pytest.raises(ArtifactError, match=r"has no manifest \(tiny\.onnx\.json\)"):
        bare.require_manifest("export it with mmexport to-onnx")
