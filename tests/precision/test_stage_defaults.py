"""What the precision stages do when the user says nothing: bounded work, said in notes, with progress."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from mmexport.core.errors import ConfigError
from mmexport.precision.collect import collect_stats
from mmexport.precision.common import RANDOM_SAMPLES, SpecFeeds, load_source_model
from mmexport.precision.fp16 import scan_fp16
from mmexport.precision.stages import CalibrationConfig, accuracy, calibrate, to_fp16
from precision.precision_data import tiny_feeds


class Recorder:
    """A progress callback with phases, as the CLI's counter: (phase, done, total) per call."""

    def __init__(self) -> None:
        self.label = ""
        self.calls: list[tuple[str, int, int | None]] = []

    def phase(self, label: str) -> None:
        self.label = label

    def __call__(self, done: int, total: int | None = None, /) -> None:
        self.calls.append((self.label, done, total))

    def phases(self) -> list[str]:
        return list(dict.fromkeys(label for label, _, _ in self.calls))


def test_random_feeds_are_all_at_the_opt_shape(tiny_fp32_onnx: Path) -> None:
    source = load_source_model(tiny_fp32_onnx)
    feeds = SpecFeeds(source.spec, 20, seed=1)
    opt = source.spec.example_point()
    shapes = {tuple(v.shape[1:]) for b in feeds.batches() for v in [b.feed["image"]]}
    assert shapes == {(3, opt["height"], opt["width"])}
    assert sum(len(b.feed["image"]) for b in feeds.batches()) == 20
    assert "at the opt shape" in feeds.description


def test_calibrate_on_random_feeds_takes_a_small_budget_and_skips_sensitivity(
    tiny_fp32_onnx: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    progress = Recorder()
    with caplog.at_level(logging.INFO, logger="mmexport"):
        result = calibrate(tiny_fp32_onnx, tmp_path / "r.int8.onnx", progress=progress)
    assert result.samples == RANDOM_SAMPLES
    assert result.accuracy is not None and result.accuracy.samples == RANDOM_SAMPLES
    assert not result.accuracy.labelled and result.sensitivity == []
    assert any("per-branch sensitivity not measured" in n for n in result.notes)
    assert any(n.startswith("evaluation: 32 samples in") and "samples/s" in n for n in result.notes)
    messages = [r.getMessage() for r in caplog.records]
    assert "calibrating (minmax) on 32 random samples at the opt shape (--samples N to change)" in messages
    assert "evaluating on 32 random samples at the opt shape (--eval-samples N to change)" in messages
    assert progress.phases() == ["calibrating", "evaluating"]
    assert progress.calls[-1] == ("evaluating", RANDOM_SAMPLES, RANDOM_SAMPLES)


def test_calibrate_measures_sensitivity_when_asked_on_random_feeds(
    tiny_fp32_onnx: Path, tmp_path: Path
) -> None:
    config = CalibrationConfig(samples=4, sensitivity=True)
    progress = Recorder()
    result = calibrate(
        tiny_fp32_onnx, tmp_path / "s.int8.onnx", config=config, eval_samples=4, progress=progress
    )
    assert {c.branch for c in result.sensitivity if c.nodes} == {"image", "fusion"}
    assert progress.phases() == ["calibrating", "sensitivity", "evaluating"]


def test_calibrate_measures_sensitivity_by_default_on_labelled_data(
    tiny_fp32_onnx: Path, tmp_path: Path
) -> None:
    feeds = [(feed, np.array([0, 1])) for feed in tiny_feeds(2)]
    config = CalibrationConfig(samples=4, batch_size=2)
    result = calibrate(tiny_fp32_onnx, tmp_path / "l.int8.onnx", data=feeds, config=config, eval_data=feeds)
    assert result.accuracy is not None and result.accuracy.labelled
    assert {c.branch for c in result.sensitivity if c.nodes} == {"image", "fusion"}


def test_fp16_on_random_feeds_reports_its_check_and_runs_fp32_once(
    tiny_fp32_onnx: Path, tmp_path: Path
) -> None:
    progress = Recorder()
    result = to_fp16(tiny_fp32_onnx, tmp_path / "r.fp16.onnx", progress=progress)
    assert result.accuracy is result.check  # no second pass over random feeds
    assert result.check is not None and result.check.samples == 32
    assert progress.phases() == ["scanning", "checking"]
    assert any("samples/s" in n for n in result.notes)


def test_fp16_scan_finds_the_ranges_the_statistics_find(tiny_fp32_onnx: Path) -> None:
    source = load_source_model(tiny_fp32_onnx)
    feeds = tiny_feeds(3)
    scan = scan_fp16(source.model, feeds)
    stats, seen = collect_stats(source.model, feeds)
    assert scan.samples == seen and len(scan.outputs) == 3
    assert set(scan.amax) == set(stats)
    for name, s in stats.items():
        assert scan.amax[name] == pytest.approx(s.amax, rel=1e-6), name


def test_accuracy_defaults_to_a_small_random_budget(tiny_fp32_onnx: Path) -> None:
    progress = Recorder()
    report = accuracy([tiny_fp32_onnx, tiny_fp32_onnx], progress=progress)
    assert report.samples == RANDOM_SAMPLES
    assert progress.phases() == ["evaluating"]
    report = accuracy([tiny_fp32_onnx], samples=5)
    assert report.samples == 5


def test_calibrate_gates_refuse_the_model_with_the_table(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mmexport.cli.app import cli

    out = tmp_path / "g.int8.onnx"
    args = ["calibrate", str(tiny_fp32_onnx), "-o", str(out), "--samples", "4", "--eval-samples", "4"]
    result = CliRunner().invoke(cli, [*args, "--max-abs-diff", "0", "-q"])
    assert result.exit_code == 1, result.output
    assert "error: INT8 model disagrees with FP32: max abs diff" in result.stderr
    assert "| int8 | int8 |" in result.output  # the table that failed
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="min_cosine and max_abs_diff need evaluation samples"):
        calibrate(tiny_fp32_onnx, out, config=CalibrationConfig(min_cosine=0.9), eval_samples=0)


def test_poor_agreement_is_a_warning_without_gates_and_an_error_with_them() -> None:
    from mmexport.core.errors import PrecisionError
    from mmexport.precision.accuracy import AccuracyReport, OutputAgreement, VariantAccuracy
    from mmexport.precision.common import check_agreement

    poor = OutputAgreement("y", max_abs=0.5, max_rel=0.1, cosine_mean=0.97, cosine_min=0.95, top1=None)
    variants = [VariantAccuracy("fp32", "fp32", None), VariantAccuracy("int8", "int8", None, [poor])]
    report = AccuracyReport("random feeds", 8, False, variants)
    (warning,) = check_agreement(report, "INT8", min_cosine=None, max_abs_diff=None, hint="")
    assert warning.startswith("INT8 agrees poorly with FP32: min cosine similarity 0.9500 < 0.99")
    assert check_agreement(report, "INT8", min_cosine=0.9, max_abs_diff=1.0, hint="") == [warning]
    both = r"min cosine similarity 0.950000 < 0.96; max abs diff 0.5 > 0.1"
    with pytest.raises(PrecisionError, match=both):
        check_agreement(report, "INT8", min_cosine=0.96, max_abs_diff=0.1, hint="")
