"""examples/control_loop.py: end to end as a subprocess, and its deadline bookkeeping in process."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
from control_loop import LoopConfig, SyntheticCamera, SyntheticMicrophone, run_loop

from .conftest import EXAMPLES
from .toy_model import SPEC


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "control_loop.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_loop_runs_end_to_end_and_prints_decisions(toy_path):
    result = run_script(str(toy_path), "--hz", "20", "--seconds", "0.5", "--log-every", "4")
    assert result.returncode == 0, result.stderr
    decisions = re.findall(r"decision=(\w+)\s+score=([\d.]+) inference=([\d.]+)ms", result.stdout)
    summary = re.fullmatch(
        r"summary: (\d+) ticks, \d+ deadline misses \((\d+) ticks skipped\); inference p50 [\d.]+ ms "
        r"p99 [\d.]+ ms; preprocess p50 [\d.]+ ms p99 [\d.]+ ms; tick work p50 [\d.]+ ms p99 [\d.]+ ms",
        result.stdout.strip().splitlines()[-1],
    )
    assert summary, result.stdout
    ticks, skipped = int(summary[1]), int(summary[2])
    assert ticks + skipped == 10 and len(decisions) == ticks >= 5
    assert all(label in SPEC.outputs[0].labels and 0 < float(score) <= 1 for label, score, _ in decisions)
    assert "first call" in result.stderr and "loaded" in result.stderr
    logged = re.findall(
        r"inference: p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms \(last 4 of (\d+) calls\)", result.stderr
    )
    assert logged == [str(4 * (i + 1)) for i in range(ticks // 4)]


def test_a_missing_model_is_one_error_line():
    result = run_script("no-such-model.onnx", "--seconds", "0.1")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: no-such-model.onnx: does not exist"
    assert result.stdout == ""


def test_bad_arguments_are_refused_by_the_parser():
    result = run_script("model.onnx", "--hz", "0")
    assert (
        result.returncode == 2
        and "--hz, --seconds, --frame-size and --log-every must be > 0" in result.stderr
    )


def test_infinite_rates_and_durations_are_refused_by_the_parser():
    for option in ("--hz", "--seconds"):
        result = run_script("model.onnx", option, "inf")
        assert result.returncode == 2 and "must be finite" in result.stderr, result.stderr


def test_a_slow_loop_reads_at_most_the_audio_window_per_tick(toy_session):
    """At 1e-6 Hz a tick's chunk was 16e9 samples (MemoryError); the window keeps one second."""
    report = run_loop(toy_session, LoopConfig(hz=1e-6, seconds=1.0, quiet=True))
    assert report.ticks == 1


def test_overrunning_ticks_are_counted_as_misses_and_late_ones_skipped(toy_session):
    out = io.StringIO()
    report = run_loop(toy_session, LoopConfig(hz=5000.0, seconds=0.04, quiet=True), out)
    assert out.getvalue() == ""  # quiet
    assert report.ticks + report.skipped == 200  # every due time is either run or skipped
    assert report.misses > 0 and report.skipped > 0
    assert report.inference_ms[0] <= report.inference_ms[1]
    assert 0 < report.preprocess_ms[0] < report.tick_ms[0]


def test_each_tick_publishes_one_decision(toy_session):
    out = io.StringIO()
    report = run_loop(toy_session, LoopConfig(hz=20.0, seconds=0.25), out)
    assert report.ticks + report.skipped == 5
    assert len(out.getvalue().splitlines()) == report.ticks >= 3


def test_synthetic_sensors_give_what_the_core_takes():
    pixels = SyntheticCamera(48, 64, seed=1).grab()
    assert pixels.shape == (48, 64, 3) and pixels.dtype == np.uint8 and pixels.std() > 10
    mic = SyntheticMicrophone(16000, frequency_hz=1000.0)
    a, b = mic.read(8), mic.read(8)  # continuous phase across chunks
    np.testing.assert_allclose(np.concatenate([a, b]), SyntheticMicrophone(16000, 1000.0).read(16), atol=1e-6)


def test_cuda_graph_runs_the_loop_on_a_captured_graph(toy_path, monkeypatch, capsys):
    """--device cuda --cuda-graph (onnxruntime's CUDA EP faked): one capture, then replays."""
    import control_loop

    from runtime.fake_cuda_ort import FakeOrt, install

    fake = install(monkeypatch, FakeOrt())
    code = control_loop.main(
        [str(toy_path), "--device", "cuda", "--cuda-graph", "--hz", "50", "--seconds", "0.2", "-q"]
    )
    assert code == 0, capsys.readouterr().err
    runs = fake.sessions[-1].runs
    assert fake.sessions[-1].graphs_enabled and runs[:2] == ["-1", "1"] and set(runs[1:]) == {"1"}
    assert control_loop.main([str(toy_path), "--cuda-graph", "--seconds", "0.1"]) == 1
    assert "error: onnxruntime: cuda_graph needs device 'cuda'" in capsys.readouterr().err
