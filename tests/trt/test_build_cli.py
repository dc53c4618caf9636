from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli
from mmexport.runtime.backends.tensorrt.api import generation

from .test_build import tiny_artifact


def test_build_command_writes_engine_and_prints_json(any_trt: ModuleType, tmp_path: Path) -> None:
    model = tiny_artifact(tmp_path)
    args = ["build", str(model), "--workspace", "1G", "--profile", "batch=1:1:1", "--json", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["path"] == str(tmp_path / "tiny.gpu.engine")
    assert len(payload["engine"]["profiles"]) == 2
    assert (tmp_path / "tiny.gpu.engine.json").exists()


def test_build_command_refuses_builder_precision_on_tensorrt_11(any_trt: ModuleType, tmp_path: Path) -> None:
    model = tiny_artifact(tmp_path)
    result = CliRunner().invoke(
        cli, ["build", str(model), "--precision", "fp16", "-o", str(tmp_path / "m.e")]
    )
    if generation(any_trt) == 10:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1
    assert "strongly typed" in result.stderr and "mmexport fp16" in result.stderr
    assert not (tmp_path / "m.e").exists()


def test_build_command_bad_size_and_profile(any_trt: ModuleType, tmp_path: Path) -> None:
    model = tiny_artifact(tmp_path)
    result = CliRunner().invoke(cli, ["build", str(model), "--workspace", "lots"])
    assert result.exit_code == 1 and "K/M/G/T" in result.stderr
    result = CliRunner().invoke(cli, ["build", str(model), "--profile", "frames=1:2:3"])
    assert result.exit_code == 1 and "named dims: batch, seq" in result.stderr


def test_build_for_a_jetson_without_tensorrt_points_to_jetpack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip cannot install TensorRT on JetPack: the advice is apt and a venv with system site-packages."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    model = tiny_artifact(tmp_path)
    result = CliRunner().invoke(cli, ["build", str(model), "--target", "jetson-orin"])
    assert result.exit_code == 1
    assert "--system-site-packages" in result.stderr and "mmexport[trt]" not in result.stderr
    result = CliRunner().invoke(cli, ["build", str(model), "--target", "gpu"])
    assert result.exit_code == 1 and "pip install 'mmexport[trt]'" in result.stderr
