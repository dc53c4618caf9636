"""Latency benchmarks of mmexport artifacts: measure (``benchmark``), then render (``BenchReport``).

    from mmexport.bench import BenchConfig, BenchTarget, benchmark, build_cases
    report = benchmark(
        [BenchTarget("model.onnx", label="fp32"), BenchTarget("model.fp16.onnx", label="fp16")],
        build_cases(sweep=True, batches=[1, 8]),
        BenchConfig(duration_s=2.0),
    )
    print(report.to_markdown(extra_columns={"accuracy": {"fp32": 0.993, "fp16": 0.992}}))

Needs numpy and the runtime's backend only; matplotlib for ``BenchReport.plot``.
"""

from mmexport.bench.cases import ShapeCase, build_cases, parse_shapes, resolve_point
from mmexport.bench.config import BenchConfig
from mmexport.bench.environment import collect_environment
from mmexport.bench.harness import BenchTarget, Runnable, benchmark
from mmexport.bench.report import BenchReport, CaseResult, TargetInfo
from mmexport.bench.stats import LatencyStats

__all__ = [
    "BenchConfig",
    "BenchReport",
    "BenchTarget",
    "CaseResult",
    "LatencyStats",
    "Runnable",
    "ShapeCase",
    "TargetInfo",
    "benchmark",
    "build_cases",
    "collect_environment",
    "parse_shapes",
    "resolve_point",
]
