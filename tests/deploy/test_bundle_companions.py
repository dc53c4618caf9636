"""Every companion an artifact carries is checked: the calibration cache has a sha256 in its
manifest (older manifests without one still bundle), and no companion is read through a symbolic
link that leaves the model's folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmexport.core.errors import ArtifactError
from mmexport.core.files import sha256_file
from mmexport.deploy.bundle import make_bundle, unbundle
from mmexport.deploy.bundle_artifacts import ChecksumError
from runtime.onnx_models import write_tiny


@pytest.fixture(scope="module")
def int8_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmexport.precision.stages import CalibrationConfig, calibrate

    folder = tmp_path_factory.mktemp("int8")
    config = CalibrationConfig(method="minmax", samples=4, batch_size=2, sensitivity=False)
    calibrate(write_tiny(folder), folder / "tiny.int8.onnx", config=config, eval_samples=0)
    return folder


@pytest.fixture
def int8(int8_source: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("tiny.int8.onnx", "tiny.int8.onnx.json", "tiny.int8.calib"):
        (folder / name).write_bytes((int8_source / name).read_bytes())
    return folder / "tiny.int8.onnx"


def _manifest(model: Path) -> dict:
    return json.loads(Path(f"{model}.json").read_text())


def test_the_calibration_cache_sha256_is_in_the_manifest(int8: Path) -> None:
    recorded = _manifest(int8)["producer"]["calibration_cache"]
    assert recorded["sha256"] == sha256_file(int8.with_name("tiny.int8.calib"))


def test_a_symlinked_cache_leading_out_of_the_folder_is_refused(int8: Path, tmp_path: Path) -> None:
    secret = tmp_path / "private.txt"
    secret.write_text("a private key")
    cache = int8.with_name("tiny.int8.calib")
    cache.unlink()
    cache.symlink_to(secret)
    with pytest.raises(ArtifactError, match=r"symbolic link .* outside the model's folder") as caught:
        make_bundle([int8], "gpu-trt10", tmp_path / "b.tar.gz")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "b.tar.gz").exists()


def test_a_cache_that_is_not_the_recorded_one_is_refused(int8: Path, tmp_path: Path) -> None:
    int8.with_name("tiny.int8.calib").write_text("TRT-8601-EntropyCalibration2\nimage: 3c000000\n")
    with pytest.raises(ChecksumError, match=r"tiny\.int8\.calib"):
        make_bundle([int8], "gpu-trt10", tmp_path / "b.tar.gz")


def test_a_manifest_without_the_cache_sha256_still_bundles(int8: Path, tmp_path: Path) -> None:
    manifest = _manifest(int8)
    del manifest["producer"]["calibration_cache"]["sha256"]
    Path(f"{int8}.json").write_text(json.dumps(manifest))
    result = make_bundle([int8], "gpu-trt10", tmp_path / "b.tar.gz")
    assert result.bundle["artifacts"][0]["calibration_cache"] == "models/tiny.int8.calib"
    assert (unbundle(result.path, tmp_path / "out").folder / "models" / "tiny.int8.calib").is_file()
