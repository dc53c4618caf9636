"""``mmexport pipeline`` on the tiny model: the report folder, its notes, and failures."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mmexport.cli.app import cli
from mmexport.core.spec import ModelSpec
from mmexport.pipeline import build_engines
from mmexport.pipeline.run import bench_batches

TESTS = Path(__file__).parents[1]
TINY_ARGS = ["--samples", "4", "--eval-samples", "4", "--duration", "0.05"]


def _spec_file(folder: Path) -> Path:
    """The tiny model's spec with class labels on its output, so that top-1 agreement is reported."""
    from tiny_models import TINY_SPEC

    spec = {**TINY_SPEC, "outputs": [{"name": "logits", "labels": ["a", "b", "c", "d", "e"]}]}
    path = folder / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def _pipeline(folder: Path, *extra: str) -> Result:
    spec = _spec_file(folder.parent)
    args = ["pipeline", f"{TESTS / 'tiny_models.py'}:tiny", "--spec", str(spec), "-o", str(folder)]
    return CliRunner().invoke(cli, [*args, *TINY_ARGS, *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    """One full run with --json (stdout) and progress (stderr)."""
    folder = tmp_path_factory.mktemp("pipeline") / "report"
    return _pipeline(folder, "--json"), folder


@pytest.mark.slow
def test_report_folder_has_the_variants_and_the_report(run: tuple[Result, Path]) -> None:
    result, folder = run
    assert result.exit_code == 0, result.output
    for name in ("model.onnx", "model.fp16.onnx", "model.int8.onnx", "model.int8.calib", "report.json"):
        assert (folder / name).is_file(), name
    if importlib.util.find_spec("matplotlib") is not None:
        assert (folder / "latency.png").is_file()
    report = (folder / "report.md").read_text()
    assert "| variant | precision | size MB | task accuracy | drop (points) | min cosine |" in report
    assert "p50 / p90 ms (opt batch 1)" in report and "samples/s (opt batch 2)" in report
    for name, precision in [("model.onnx", "fp32"), ("model.fp16.onnx", "fp16"), ("model.int8.onnx", "int8")]:
        assert f"| {name} | {precision} |" in report
    assert "Environment:" in report and "method minmax; TensorRT calibration cache" in report


@pytest.mark.slow
def test_report_json_is_printed_and_written(run: tuple[Result, Path]) -> None:
    result, folder = run
    printed: dict[str, Any] = json.loads(result.stdout)
    written = json.loads((folder / "report.json").read_text())
    assert printed == written
    assert [v["variant"] for v in written["variants"]] == ["model.onnx", "model.fp16.onnx", "model.int8.onnx"]
    assert set(written["variants"][2]["latency"]) == {"opt batch 1", "opt batch 2"}
    assert [v["precision"] for v in written["accuracy"]["variants"]] == ["fp32", "fp16", "int8"]
    cosines = [v["min_cosine"] for v in written["variants"]]
    assert cosines[0] is None and all(0.0 < c <= 1.0 + 1e-9 for c in cosines[1:])
    assert written["bench"]["cases"] == ["opt batch 1", "opt batch 2"]
    assert set(written["seconds"]) >= {"export", "fp16", "int8", "accuracy", "bench", "total"}


@pytest.mark.slow
def test_skipped_engine_and_random_data_are_said(run: tuple[Result, Path]) -> None:
    result, folder = run
    report = (folder / "report.md").read_text()
    written = json.loads((folder / "report.json").read_text())
    assert written["engine"]["built"] is False
    assert "TensorRT engine build skipped" in report
    assert "TensorRT engine build skipped" in result.stderr
    assert "random feeds from the spec; give real samples" in report
    assert "warning: no --data" in result.stderr
    for stage in ("[1/6] export", "[3/6] int8", "[6/6] bench"):
        assert stage in result.stderr


def test_bad_data_fails_with_one_line_and_no_report(tmp_path: Path) -> None:
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "report.md").write_text("a previous run's report")
    result = _pipeline(folder, "--data", str(tmp_path / "missing"), "-q")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    # refused before anything was replaced: the previous run's report still describes the folder
    assert (folder / "report.md").read_text() == "a previous run's report"
    assert not (folder / "model.onnx").exists() and not (folder / "report.json").exists()


def test_without_tensorrt_the_engine_stage_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    status = build_engines([Path("model.fp16.onnx")], "jetson-orin")
    assert status["built"] is False and status["engines"] == []
    assert "TensorRT is not installed" in status["reason"]
    assert "mmexport build model.int8.onnx --target jetson-orin" in status["reason"]


@pytest.mark.slow
def test_with_tensorrt_the_engine_stage_builds_both_engines(
    run: tuple[Result, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import sys

    from trt.fakes import fake_tensorrt

    _, folder = run
    models = []
    for name in ("model.fp16.onnx", "model.int8.onnx"):
        for file in (name, f"{name}.json"):
            shutil.copy(folder / file, tmp_path / file)
        models.append(tmp_path / name)
    from trt.fakes import cuda_runtime

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("11.4.0.106"))
    cuda, _ = cuda_runtime.install()  # the build reads the GPU's name and compute capability
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cuda)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    status = build_engines(models, "gpu")
    assert status["built"] is True, status["reason"]
    assert [Path(e).name for e in status["engines"]] == ["model.fp16.engine", "model.int8.engine"]
    assert all(Path(e).is_file() and Path(f"{e}.json").is_file() for e in status["engines"])
    assert status["reason"].startswith("built TensorRT engines for target gpu")


def test_bench_batches_follow_the_spec() -> None:
    from tiny_models import TINY_SPEC

    spec = ModelSpec.from_dict(TINY_SPEC)
    assert bench_batches(spec) == [1, 2]
    one = json.loads(json.dumps(TINY_SPEC))
    one["dims"]["batch"]["opt"] = 1
    assert bench_batches(ModelSpec.from_dict(one)) == [1]


def _no_export(result: Result, folder: Path) -> None:
    assert result.exit_code == 1, result.output
    assert "[1/6] export" not in result.stderr
    assert not (folder / "model.onnx").exists()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr


def test_missing_data_of_a_builtin_fails_before_the_export(tmp_path: Path) -> None:
    """The built-in's spec is known without exporting: the data is opened first."""
    folder = tmp_path / "report"
    result = CliRunner().invoke(cli, ["pipeline", "-o", str(folder), "--data", str(tmp_path / "none")])
    _no_export(result, folder)
    assert "does not exist" in result.stderr


def test_bad_data_of_a_user_model_with_spec_fails_before_the_export(tmp_path: Path) -> None:
    import numpy as np

    bad = tmp_path / "bad.npz"
    np.savez(bad, nothing=np.zeros(3))  # no array of the spec's inputs
    folder = tmp_path / "report"
    _no_export(_pipeline(folder, "--eval-data", str(bad)), folder)


def test_user_model_without_spec_checks_the_data_path_exists(tmp_path: Path) -> None:
    from mmexport.core.errors import DataError
    from mmexport.pipeline.config import PipelineConfig
    from mmexport.pipeline.preflight import check_data

    config = PipelineConfig(model="my_model.py:build", data=str(tmp_path / "none"))
    with pytest.raises(DataError, match="does not exist"):
        check_data(config)
    check_data(PipelineConfig(model="my_model.py:build", data="package.module:make_feeds"))
    with pytest.raises(DataError, match=r"feeds\.py' does not exist"):
        check_data(PipelineConfig(model="my_model.py:build", data=str(tmp_path / "feeds.py:make")))


@pytest.mark.slow
def test_a_failing_plot_becomes_a_note(run: tuple[Result, Path], tmp_path: Path) -> None:
    """matplotlib 3.8 raised TypeError on tick_labels; the report must be written anyway."""
    from types import SimpleNamespace

    from mmexport.pipeline.report import write_plot

    def broken(path: Path) -> None:
        path.write_bytes(b"half a png")
        raise TypeError("boxplot() got an unexpected keyword argument 'tick_labels'")

    result: Any = SimpleNamespace(folder=tmp_path, bench=SimpleNamespace(plot=broken), notes={})
    assert write_plot(result) is None
    assert result.notes["bench"] == [
        "latency.png skipped: plotting failed (TypeError: boxplot() got an unexpected keyword argument "
        "'tick_labels')"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_accuracy_note_says_the_sample_count_once(run: tuple[Result, Path]) -> None:
    _, folder = run
    report = (folder / "report.md").read_text()
    line = next(line for line in report.splitlines() if line.startswith("- Accuracy on "))
    assert line.count("samples") == 1, line


def test_an_unwritable_report_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    spec = _spec_file(tmp_path)
    args = [
        "pipeline",
        f"{TESTS / 'tiny_models.py'}:tiny",
        "--spec",
        str(spec),
        "-o",
        str(blocker / "report"),
    ]
    result = CliRunner().invoke(cli, [*args, *TINY_ARGS, "-q"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write the report here" in lines[0], result.stderr
