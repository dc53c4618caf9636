"""``mmexport bench``: exit codes, messages and the files it writes (click's CliRunner)."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli

FAST = ["--warmup", "0", "--iterations", "5"]


def _bench(*args):
    return CliRunner().invoke(cli, ["bench", *map(str, args)])


def test_bench_two_artifacts_writes_every_format(artifacts, tmp_path):
    a, b = artifacts
    out = {k: tmp_path / f"bench.{k}" for k in ("json", "csv", "md", "png")}
    result = _bench(
        a, b, *FAST, "--sweep", "--batch", "2", "--json", out["json"], "--csv", out["csv"],
        "--markdown", out["md"], "--plot", out["png"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "a.onnx" in result.stdout and "max batch 2" in result.stdout
    assert "[1/3] min batch 2" in result.stderr and "wrote" in result.stderr
    data = json.loads(out["json"].read_text())
    assert data["cases"] == ["min batch 2", "opt batch 2", "max batch 2"]
    assert len(data["results"]) == 6 and data["config"]["iterations"] == 5
    assert len(list(csv.DictReader(out["csv"].open()))) == 6
    assert out["md"].read_text().startswith("| case |")
    assert out["png"].read_bytes()[:4] == b"\x89PNG"


def test_bench_shape_and_quiet(artifacts):
    result = _bench(
        artifacts[0], *FAST, "--shape", "image=1x3x12x12", "--shape", "image=2x3x4x4,tokens=2x3", "-q"
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "image=1x3x12x12" in result.stdout and "image=2x3x4x4,tokens=2x3" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--shape", "image=1x3"], 1, "error: input 'image': shape 1x3 has rank 2"),
        (
            ["--shape", "image=20x3x8x8"],
            1,
            "error: input 'image': dim 'batch' (axis 0) must be in [1, 8], got 20",
        ),
        (["--shape", "image"], 2, "is not NAME=AxBxC"),
        (["--batch", "0"], 2, "--batch"),
        (
            ["--device", "cuda"],
            1,
            "error: onnxruntime: CUDAExecutionProvider is not in this onnxruntime build",
        ),
    ],
)
def test_bench_errors(artifacts, args, code, fragment):
    result = _bench(artifacts[0], *FAST, *args, "-q")
    assert result.exit_code == code, result.output
    assert fragment in result.stderr
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1


def test_bench_missing_artifact(tmp_path):
    result = _bench(tmp_path / "none.onnx", *FAST)
    assert result.exit_code == 1 and "none.onnx: does not exist" in result.stderr


def test_bench_plot_without_matplotlib_fails_before_measuring(artifacts, tmp_path, no_matplotlib):
    result = _bench(artifacts[0], *FAST, "--plot", tmp_path / "x.png")
    assert result.exit_code == 1
    assert "error: --plot (latency plots) needs the Python package 'matplotlib'" in result.stderr
    assert "mmexport[plot]" in result.stderr and "loading" not in result.stderr


def test_bench_refuses_batch_against_shape_before_measuring(artifacts):
    result = _bench(artifacts[0], *FAST, "--shape", "image=1x3x8x8", "--batch", "4")
    assert result.exit_code == 1, result.output
    assert "--shape image=1x3x8x8 has batch 1 but --batch is 4" in result.stderr
    assert "measuring" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


def test_bench_repeated_shape_and_batch_run_once(artifacts, tmp_path):
    out = tmp_path / "bench.json"
    args = ["--shape", "image=2x3x8x8", "--shape", "image=2x3x8x8", "--batch", "2", "--batch", "2"]
    result = _bench(artifacts[0], *FAST, *args, "--json", out, "-q")
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["cases"] == ["image=2x3x8x8 batch 2"] and len(data["results"]) == 1
    assert data["results"][0]["first_call_after"] == "load"


def test_bench_output_paths_are_checked_before_measuring(artifacts, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder would go")
    result = _bench(artifacts[0], *FAST, "--json", tmp_path / "ok.json", "--csv", blocker / "bench.csv")
    assert result.exit_code == 1
    assert "--csv: cannot create its folder" in result.stderr and "loading" not in result.stderr
    assert not (tmp_path / "ok.json").exists()
    nested = tmp_path / "new" / "dir" / "bench.json"
    result = _bench(artifacts[0], *FAST, "--json", nested, "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(nested.read_text())["format"] == "mmexport.bench"


def test_bench_one_failing_output_does_not_stop_the_others(artifacts, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from mmexport.bench.report import BenchReport

    def broken_plot(self, path):
        raise TypeError("boxplot() got an unexpected keyword argument 'tick_labels'")

    monkeypatch.setattr(BenchReport, "plot", broken_plot)
    out = {k: tmp_path / f"bench.{k}" for k in ("json", "csv", "md", "png")}
    result = _bench(
        artifacts[0], *FAST, "--plot", out["png"], "--json", out["json"], "--csv", out["csv"],
        "--markdown", out["md"], "-q",
    )  # fmt: skip
    assert result.exit_code == 1
    assert all(out[k].is_file() for k in ("json", "csv", "md")) and not out["png"].exists()
    assert "bench.png: cannot be written: TypeError" in result.stderr
    assert "the other outputs were" in result.stderr


def test_bench_text_shows_no_trtexec_lines_on_cpu(artifacts, tmp_path):
    out = tmp_path / "bench.json"
    result = _bench(artifacts[0], *FAST, "--sweep", "--json", out, "-q")
    assert result.exit_code == 0, result.output
    assert "trtexec" not in result.stdout
    assert all(r["trtexec"] for r in json.loads(out.read_text())["results"])
    shown = _bench(artifacts[0], *FAST, "--trtexec", "-q")
    assert "Cross-check with trtexec" in shown.stdout and "--onnx=" in shown.stdout
