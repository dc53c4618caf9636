"""``--cuda-graph`` on ``run``, ``bench`` and ``pipeline`` (onnxruntime's CUDA EP faked: fake_cuda_ort)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli
from runtime.fake_cuda_ort import FakeOrt, install
from runtime.onnx_models import expected_logits, feeds

FAST = ["--warmup", "0", "--iterations", "5", "-q"]


@pytest.fixture
def npz(tmp_path):
    f = feeds()
    np.savez(tmp_path / "feeds.npz", **f)
    return tmp_path / "feeds.npz", f


def _invoke(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def test_run_with_cuda_graph(monkeypatch, tiny_path, npz):
    fake = install(monkeypatch, FakeOrt())
    path, f = npz
    out = path.with_name("out.npz")
    result = _invoke("run", tiny_path, "-i", path, "--device", "cuda", "--cuda-graph", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(out)["logits"], expected_logits(**f), rtol=1e-5, atol=1e-5)
    assert fake.sessions[-1].graphs_enabled and fake.sessions[-1].runs == ["-1", "1"]


@pytest.mark.parametrize("command", ["run", "bench"])
def test_cuda_graph_on_the_cpu_is_one_error_line(tiny_path, npz, command):
    args = ["-i", npz[0]] if command == "run" else FAST
    result = _invoke(command, tiny_path, *args, "--cuda-graph")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: onnxruntime: cuda_graph needs device 'cuda'")
    assert len(result.stderr.strip().splitlines()) <= 2  # the error and its hint


def test_bench_with_cuda_graph(monkeypatch, tiny_path, tmp_path):
    fake = install(monkeypatch, FakeOrt())
    report = tmp_path / "bench.json"
    result = _invoke("bench", tiny_path, "--device", "cuda", "--cuda-graph", *FAST, "--json", report)
    assert result.exit_code == 0, result.output
    runs = fake.sessions[-1].runs
    assert runs[:2] == ["-1", "1"] and set(runs[2:]) == {"1"} and len(runs) > 5  # captured once, replayed
    target = json.loads(report.read_text())["targets"][0]
    assert target["backend"]["cuda_graph"] is True


def test_pipeline_gives_cuda_graph_to_the_engine_only(monkeypatch):
    import mmexport.bench
    from mmexport.core.spec import ModelSpec
    from mmexport.pipeline import PipelineConfig
    from mmexport.pipeline.run import run_benchmarks
    from runtime.onnx_models import SPEC

    seen = []
    monkeypatch.setattr(mmexport.bench, "benchmark", lambda targets, cases, config: seen.extend(targets))
    spec = ModelSpec.from_dict(SPEC)
    run_benchmarks([Path("m.onnx"), Path("m.engine")], spec, PipelineConfig(cuda_graph=True))
    assert [(t.device, t.options) for t in seen] == [("cpu", None), ("cuda", {"cuda_graph": True})]
    assert "--cuda-graph" in _invoke("pipeline", "--help").output
