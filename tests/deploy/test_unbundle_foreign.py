"""``unbundle`` never removes what it did not write: a folder that appears at -o while it unpacks is
refused (not deleted), and --overwrite replaces only the earlier bundle's own files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli
from mmexport.core.errors import ArtifactError
from mmexport.deploy import bundle as bundle_module
from mmexport.deploy.bundle import make_bundle, unbundle
from runtime.onnx_models import write_tiny


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundle")
    return make_bundle([write_tiny(folder)], "gpu-trt10", folder / "b.tar.gz").path


def _appears_during_extraction(monkeypatch: pytest.MonkeyPatch, out: Path) -> None:
    real = bundle_module.extract

    def extract(*args, **kwargs):  # type: ignore[no-untyped-def]
        members = real(*args, **kwargs)
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        return members

    monkeypatch.setattr(bundle_module, "extract", extract)


def test_a_folder_that_appears_after_the_check_is_refused_and_kept(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    _appears_during_extraction(monkeypatch, out)
    with pytest.raises(ArtifactError, match="appeared while the bundle was unpacked"):
        unbundle(archive, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_cli_exits_non_zero_when_a_folder_appears(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    _appears_during_extraction(monkeypatch, out)
    result = CliRunner().invoke(cli, ["unbundle", str(archive), "-o", str(out)])
    assert result.exit_code != 0
    assert "appeared while the bundle was unpacked" in result.output
    assert (out / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_only_the_earlier_bundles_files(archive: Path, tmp_path: Path) -> None:
    out = unbundle(archive, tmp_path / "out").folder
    (out / "notes.txt").write_text("mine")
    (out / "models" / "mine.txt").write_text("mine too")
    (out / "calib").mkdir()
    (out / "calib" / "0.npz").write_text("data")
    (out / "engines").mkdir()
    (out / "engines" / "tiny.gpu.engine").write_text("built by build.sh")
    (out / "README.txt").write_text("edited")
    unbundle(archive, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "models" / "mine.txt").read_text() == "mine too"
    assert (out / "calib" / "0.npz").read_text() == "data"
    assert not (out / "engines").exists(), "what build.sh wrote belongs to the earlier bundle"
    assert (out / "README.txt").read_text() != "edited"
    assert (out / "bundle.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_triton_overwrite_keeps_what_the_user_added_to_the_model_folder(tmp_path: Path) -> None:
    from mmexport.deploy.triton import triton_repository
    from mmexport.deploy.triton_model import TritonOptions

    onnx_path = write_tiny(tmp_path)
    repo = tmp_path / "repo"
    triton_repository([onnx_path], repo, TritonOptions(max_batch=4))
    (repo / "tiny" / "2").mkdir()
    (repo / "tiny" / "2" / "model.onnx").write_text("a version the user added")
    (repo / "tiny" / "notes.txt").write_text("mine")
    triton_repository([onnx_path], repo, TritonOptions(max_batch=8), overwrite=True)
    assert (repo / "tiny" / "2" / "model.onnx").read_text() == "a version the user added"
    assert (repo / "tiny" / "notes.txt").read_text() == "mine"
    assert "max_batch_size: 8" in (repo / "tiny" / "config.pbtxt").read_text()
    assert sorted(p.name for p in repo.iterdir()) == ["tiny"]
