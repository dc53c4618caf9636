"""The fp16 / calibrate / accuracy commands: exit codes, messages, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from mmexport.cli.app import cli
from precision.precision_data import tiny_feeds


def npz_folder(path: Path, count: int = 3) -> Path:
    path.mkdir()
    for i, feed in enumerate(tiny_feeds(count)):
        np.savez(path / f"b{i}.npz", **feed, labels=np.array([0, 1]))
    return path


def test_calibrate_then_accuracy_json(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    data = npz_folder(tmp_path / "data")
    out = tmp_path / "m.int8.onnx"
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "calibrate",
            str(tiny_fp32_onnx),
            "-o",
            str(out),
            "--data",
            str(data),
            "--samples",
            "6",
            "--method",
            "percentile",
            "--percentile",
            "99.9",
            "--eval-data",
            str(data),
            "--json",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["path"] == str(out)
    assert Path(payload["calibration_cache"]).name == "m.int8.calib"
    assert {row["branch"] for row in payload["sensitivity"] if row["nodes"]} == {"image", "fusion"}
    result = runner.invoke(
        cli, ["accuracy", str(tiny_fp32_onnx), str(out), "--data", str(data), "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [v["precision"] for v in report["variants"]] == ["fp32", "int8"]
    result = runner.invoke(cli, ["accuracy", str(tiny_fp32_onnx), str(out), "--data", str(data), "-q"])
    assert "| m.int8.onnx | int8 |" in result.stdout


def test_fp16_default_output_name_and_notes(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    model = tmp_path / "tiny.onnx"
    model.write_bytes(tiny_fp32_onnx.read_bytes())
    Path(f"{model}.json").write_text(Path(f"{tiny_fp32_onnx}.json").read_text())
    result = CliRunner().invoke(cli, ["fp16", str(model), "--keep-fp32", "Gemm", "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tiny.fp16.onnx").exists()
    assert "note: kept in FP32 (1 nodes): --keep-fp32 Gemm" in result.stderr
    assert "wrote " in result.stdout and "| fp16 | fp16 |" in result.stdout


def test_errors_are_one_line_with_exit_code_1(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["calibrate", str(tmp_path / "nope.onnx")])
    assert missing.exit_code == 1
    assert missing.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "does not exist" in missing.stderr
    bad = runner.invoke(cli, ["calibrate", str(tiny_fp32_onnx), "--data", str(tmp_path / "absent"), "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["type"] == "DataError"
    assert not any(tmp_path.glob("*.onnx"))
    usage = runner.invoke(cli, ["calibrate", str(tiny_fp32_onnx), "--method", "mse"])
    assert usage.exit_code == 2 and "'mse' is not one of" in usage.stderr


def test_an_onnx_from_elsewhere_takes_its_spec(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(tiny_fp32_onnx.read_bytes())  # no manifest beside it
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(json.loads(Path(f"{tiny_fp32_onnx}.json").read_text())["spec"]))
    runner = CliRunner()
    refused = runner.invoke(cli, ["fp16", str(foreign), "-q"])
    assert refused.exit_code == 1 and "give its spec with --spec" in refused.stderr
    result = runner.invoke(cli, ["fp16", str(foreign), "--spec", str(spec), "--eval-samples", "0", "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "foreign.fp16.onnx").exists()
    wrong = tmp_path / "wrong.json"
    data = json.loads(spec.read_text())
    data["inputs"][0]["name"] = "camera"
    wrong.write_text(json.dumps(data))
    mismatch = runner.invoke(cli, ["calibrate", str(foreign), "--spec", str(wrong), "-q"])
    assert mismatch.exit_code == 1 and "but the spec declares camera" in mismatch.stderr
