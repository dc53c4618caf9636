"""``BenchReport``: what a benchmark measured, with its environment; renderers live apart.

JSON schema (``to_dict()``, written by ``mmexport bench --json FILE``), format_version 1::

    {
      "format": "mmexport.bench", "format_version": 1, "created": "2025-01-01T12:00:00+00:00",
      "config": {"warmup_s", "duration_s", "iterations", "min_iterations", "block_s", "seed"},
      "environment": {
        "host": {"os", "machine", "python", "cpu", "cores", "cores_usable", "cpu_governor"},
        "libraries": {"python": "3.11.7", "numpy": "...", "onnxruntime": "...", ...: null if absent},
        "backends": [Session.describe() per target],
        "gpus": [{"name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem"}],
        "jetson": null | {"model", "l4t", "power_mode", "clocks_locked"},
        "warnings": ["..."]
      },
      "targets": [{"label", "artifact", "load_s", "backend": {...Session.describe()}}],
      "cases": ["opt", "min batch 8", ...],
      "results": [{
        "target": label, "case": case label, "shapes": {"image": [1, 3, 64, 64], ...}, "batch": 1,
        "first_call_ms": 12.3, "first_call_after": "load" | "shape change", "warmup_calls": 40,
        "latency_ms": {"count", "mean", "std", "min", "p50", "p90", "p95", "p99", "max", "total_s"},
        "calls_per_s": 800.0, "samples_per_s": 800.0,
        "gpu_ms": {"gpu": {...}, "h2d": {...}, "compute": {...}, "d2h": {...}},  # TensorRT only
        "trtexec": ["trtexec --loadEngine=... --shapes=..."],  # engines and ONNX files
        "samples_ms": [...]            # only with to_dict(samples=True)
      }]
    }

Latencies are milliseconds per synchronous call (validation included); ``first_call_ms`` is kept
out of the steady-state statistics, as are warm-up calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmexport.bench.stats import LatencyStats
from mmexport.core.files import utc_now

if TYPE_CHECKING:
    from mmexport.bench.config import BenchConfig

FORMAT = "mmexport.bench"
FORMAT_VERSION = 1


@dataclass
class TargetInfo:
    label: str
    artifact: str | None
    load_s: float | None
    backend: dict[str, Any]


@dataclass
class CaseResult:
    """One target at one shape case."""

    target: str
    case: str
    shapes: dict[str, list[int]]
    batch: int
    first_call_ms: float
    first_call_after: str
    warmup_calls: int
    stats: LatencyStats
    samples_ms: np.ndarray = field(repr=False)
    gpu_ms: dict[str, LatencyStats] | None = None  # CUDA-event time by phase, where the runner has it
    trtexec: list[str] = field(default_factory=list)  # the equivalent trtexec command line(s)

    @property
    def samples_per_s(self) -> float:
        return self.stats.calls_per_s * self.batch

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target": self.target,
            "case": self.case,
            "shapes": self.shapes,
            "batch": self.batch,
            "first_call_ms": round(self.first_call_ms, 6),
            "first_call_after": self.first_call_after,
            "warmup_calls": self.warmup_calls,
            "latency_ms": self.stats.to_dict(),
            "calls_per_s": round(self.stats.calls_per_s, 3),
            "samples_per_s": round(self.samples_per_s, 3),
        }
        if self.gpu_ms is not None:
            out["gpu_ms"] = {phase: stats.to_dict() for phase, stats in self.gpu_ms.items()}
        if self.trtexec:
            out["trtexec"] = list(self.trtexec)
        if samples:
            out["samples_ms"] = [round(float(v), 6) for v in self.samples_ms]
        return out


@dataclass
class BenchReport:
    """Every result, the targets and cases in order, the environment and the settings."""

    targets: list[TargetInfo]
    cases: list[str]
    results: list[CaseResult]
    environment: dict[str, Any]
    config: BenchConfig
    created: str = field(default_factory=utc_now)

    @property
    def warnings(self) -> list[str]:
        return list(self.environment.get("warnings", []))

    def result(self, target: str, case: str) -> CaseResult:
        for r in self.results:
            if r.target == target and r.case == case:
                return r
        raise KeyError((target, case))

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": self.created,
            "config": asdict(self.config),
            "environment": self.environment,
            "targets": [asdict(t) for t in self.targets],
            "cases": list(self.cases),
            "results": [r.to_dict(samples) for r in self.results],
        }

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per result (the CSV's columns), for tables of one's own."""
        from mmexport.bench.render import rows

        return rows(self)

    def to_text(self, trtexec: bool = False) -> str:
        """The terminal table; ``trtexec`` adds the trtexec lines of non-TensorRT targets too."""
        from mmexport.bench.render import text_table

        return text_table(self, trtexec)

    def to_markdown(self, extra_columns: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """A Markdown table; ``extra_columns`` adds columns by target label, e.g. accuracy."""
        from mmexport.bench.render import markdown

        return markdown(self, extra_columns)

    def to_csv(self) -> str:
        from mmexport.bench.render import csv_text

        return csv_text(self)

    def write_json(self, path: str | Path, samples: bool = False) -> Path:
        """Write the JSON form atomically (a killed run or a full disk leaves an earlier file whole)."""
        from mmexport.core.files import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(samples), indent=2) + "\n")
        return Path(path)

    def write_csv(self, path: str | Path) -> Path:
        """Write ``to_csv()`` atomically."""
        from mmexport.core.files import atomic_write_text

        atomic_write_text(path, self.to_csv())
        return Path(path)

    def write_markdown(self, path: str | Path) -> Path:
        """Write ``to_markdown()`` atomically."""
        from mmexport.core.files import atomic_write_text

        atomic_write_text(path, self.to_markdown())
        return Path(path)

    def plot(self, path: str | Path) -> Path:
        """Latency distributions per target and case as a PNG (needs the ``plot`` extra), written
        atomically."""
        from mmexport.bench.plot import plot_report

        return plot_report(self, Path(path))
