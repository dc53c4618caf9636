"""The harness: every target at every case, first calls apart, interleaving, and the JSON schema."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from mmexport.bench import BenchConfig, BenchTarget, ShapeCase, benchmark, build_cases
from mmexport.runtime import Runner, Session
from runtime.onnx_models import write_tiny


def test_every_target_at_every_case(report):
    fast = report.config
    assert report.cases == [f"{c} batch {b}" for c in ("min", "opt", "max") for b in (1, 4)]
    assert [t.label for t in report.targets] == ["a.onnx", "b.onnx"]
    assert len(report.results) == 12
    r = report.result("b.onnx", "max batch 4")
    assert r.shapes == {"image": [4, 3, 16, 16], "tokens": [4, 12]} and r.batch == 4
    assert r.samples_per_s == pytest.approx(4 * r.stats.calls_per_s)
    assert r.stats.count >= fast.min_iterations and r.stats.total_s >= fast.duration_s
    assert [x.first_call_after for x in report.results[:4]] == [
        "load",
        "load",
        "shape change",
        "shape change",
    ]


def test_json_schema(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert data["format"] == "mmexport.bench" and data["format_version"] == 1
    assert set(data) == {
        "format",
        "format_version",
        "created",
        "config",
        "environment",
        "targets",
        "cases",
        "results",
    }
    assert set(data["config"]) == {
        "warmup_s",
        "duration_s",
        "iterations",
        "min_iterations",
        "block_s",
        "seed",
    }
    assert set(data["environment"]) == {"host", "libraries", "backends", "gpus", "jetson", "warnings"}
    assert {"cpu", "cores", "cores_usable"} <= set(data["environment"]["host"])
    assert data["environment"]["libraries"]["onnxruntime"]
    assert set(data["targets"][0]) == {"label", "artifact", "load_s", "backend"}
    assert data["targets"][0]["backend"]["provider"] == "CPUExecutionProvider"
    result = data["results"][0]
    assert set(result) == {
        "target", "case", "shapes", "batch", "first_call_ms", "first_call_after", "warmup_calls",
        "latency_ms", "calls_per_s", "samples_per_s", "trtexec",
    }  # fmt: skip
    assert set(result["latency_ms"]) == {
        "count",
        "mean",
        "std",
        "min",
        "p50",
        "p90",
        "p95",
        "p99",
        "max",
        "total_s",
    }
    with_samples = report.to_dict(samples=True)["results"][0]
    assert len(with_samples["samples_ms"]) == result["latency_ms"]["count"]


def test_iterations_and_interleaving(artifacts):
    order = []

    class Recording(Runner):
        def __init__(self, session, name):
            super().__init__()
            self.session, self.name = session, name
            self._use_spec(session.spec)

        def _run(self, feeds):
            order.append(self.name)
            return self.session.run(feeds)

        def describe(self):
            return {"backend": "recording"}

    targets = [
        BenchTarget(label=n, runner=Recording(Session(p), n)) for n, p in zip("ab", artifacts, strict=True)
    ]
    config = BenchConfig(warmup_s=0.0, iterations=50, block_s=0.0)
    report = benchmark(targets, [ShapeCase("opt")], config)
    assert [r.stats.count for r in report.results] == [50, 50]
    timed = order[-100:]
    assert timed[:4] == ["a", "b", "a", "b"]  # blocks of one call at block_s=0: strict alternation
    assert report.targets[0].load_s is None and report.targets[0].backend == {"backend": "recording"}


def test_duplicate_labels_are_told_apart(artifacts):
    config = BenchConfig(warmup_s=0.0, iterations=3)
    report = benchmark([artifacts[0], artifacts[0]], None, config)
    assert [t.label for t in report.targets] == ["a.onnx", "a.onnx #2"]


def test_artifact_without_manifest_needs_shapes(tmp_path):
    from mmexport.core.errors import InputError

    path = write_tiny(tmp_path, manifest=False)
    config = BenchConfig(warmup_s=0.0, iterations=3)
    with pytest.raises(InputError, match="without a manifest"):
        benchmark([path], None, config)
    shapes = {"image": (1, 3, 8, 8), "tokens": (1, 4)}
    report = benchmark([path], [ShapeCase("given", shapes=shapes)], config)
    assert report.results[0].shapes == {"image": [1, 3, 8, 8], "tokens": [1, 4]}


def test_samples_are_milliseconds(report):
    r = report.results[0]
    assert isinstance(r.samples_ms, np.ndarray) and r.samples_ms.size == r.stats.count
    assert 0 < r.stats.p50 < 100


def test_long_case_prints_progress(artifacts, monkeypatch, caplog):
    from mmexport.bench import harness

    monkeypatch.setattr(harness, "PROGRESS_S", 0.0)
    fast = BenchConfig(warmup_s=0.01, duration_s=0.05, min_iterations=5)
    caplog.set_level(logging.INFO, logger="mmexport.bench")  # the harness's notes
    benchmark([artifacts[0]], build_cases(), fast)
    ticks = [line for line in caplog.messages if line.startswith("  ... ")]
    assert ticks and "a.onnx" in ticks[0] and "/0.05 s" in ticks[0]


def test_repeated_case_labels_are_refused(artifacts):
    with pytest.raises(ValueError, match="'opt' is repeated"):
        benchmark([artifacts[0]], [ShapeCase("opt"), ShapeCase("opt")], BenchConfig(iterations=1))


def test_a_runner_that_is_not_a_runtime_runner_is_refused_by_name(artifacts):
    class Duck:  # has run() and a spec, but not the contract's validation and close
        spec = Session(artifacts[0]).spec

        def run(self, feeds):
            return {}

    with pytest.raises(TypeError, match=r"must be a mmexport\.runtime\.Runner.*got .*Duck"):
        benchmark([BenchTarget(label="duck", runner=Duck())], build_cases([], []), BenchConfig(iterations=1))
