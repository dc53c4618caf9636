"""Renderers of a BenchReport: terminal table, Markdown, CSV. They format; they never measure."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mmexport.bench.advice import precision_advice

if TYPE_CHECKING:
    from mmexport.bench.report import BenchReport

_HEAD = [
    "case",
    "target",
    "p50",
    "p90",
    "p95",
    "p99",
    "max",
    "mean",
    "std",
    "calls/s",
    "first call",
    "speed-up",
]


def rows(report: BenchReport) -> list[dict[str, Any]]:
    """Flat rows; ``speedup_p50`` is the first target's p50 over this one's, in the same case."""
    out = []
    for r in report.results:
        base = report.result(report.targets[0].label, r.case).stats.p50
        s = r.stats
        out.append(
            {
                "case": r.case,
                "target": r.target,
                "shapes": "; ".join(f"{k} {'x'.join(map(str, v))}" for k, v in r.shapes.items()),
                "batch": r.batch,
                "count": s.count,
                **{k: getattr(s, k) for k in ("p50", "p90", "p95", "p99", "max", "mean", "std", "min")},
                "calls_per_s": r.stats.calls_per_s,
                "samples_per_s": r.samples_per_s,
                "first_call_ms": r.first_call_ms,
                "first_call_after": r.first_call_after,
                "speedup_p50": base / s.p50 if s.p50 > 0 else float("nan"),
            }
        )
    return out


def _cells(row: Mapping[str, Any]) -> list[str]:
    ms = [f"{row[k]:.3f}" for k in ("p50", "p90", "p95", "p99", "max", "mean", "std")]
    return [
        row["case"],
        row["target"],
        *ms,
        f"{row['calls_per_s']:.1f}",
        f"{row['first_call_ms']:.2f}",
        f"{row['speedup_p50']:.2f}x",
    ]


def _align(table: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return [
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in table
    ]


def text_table(report: BenchReport, trtexec: bool = False) -> str:
    """The terminal view: latencies in ms, one line per target and case, then the settings.

    trtexec cross-check lines are shown for TensorRT targets only, unless ``trtexec`` asks for
    every target that has them (they compare with GPU time; beside CPU onnxruntime they mean nothing)."""
    table = [_HEAD, *(_cells(r) for r in rows(report))]
    lines = _align(table)
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    lines.append(_footer(report))
    lines += gpu_lines(report, trtexec)
    advice = precision_advice(report)
    if advice:
        lines += ["", *advice]
    return "\n".join(lines)


def runs_tensorrt(backend: Mapping[str, Any]) -> bool:
    """Whether a target (its ``Session.describe()``) runs on TensorRT: a native engine or the EP."""
    return backend.get("backend") == "tensorrt" or backend.get("provider") == "TensorrtExecutionProvider"


def gpu_lines(report: BenchReport, trtexec: bool = False) -> list[str]:
    """GPU time by phase (CUDA events, p50 ms) where measured, then the trtexec cross-check lines
    (TensorRT targets only, unless ``trtexec``)."""
    out = []
    timed = [r for r in report.results if r.gpu_ms]
    if timed:
        out += ["", "GPU time, CUDA events (p50 ms): total = H2D + compute + D2H"]
        for r in timed:
            g = {k: v.p50 for k, v in (r.gpu_ms or {}).items()}
            parts = " + ".join(f"{g.get(k, 0.0):.3f}" for k in ("h2d", "compute", "d2h"))
            out.append(f"  {r.case}  {r.target}: {g.get('gpu', 0.0):.3f} = {parts}")
    shown = {t.label for t in report.targets if trtexec or runs_tensorrt(t.backend)}
    lines = [(r, cmd) for r in report.results if r.target in shown for cmd in r.trtexec]
    if lines:
        what = "compute above" if timed else "the latencies above, which include host copies"
        out += ["", f"Cross-check with trtexec (its GPU Compute Time compares with {what}):"]
        out += [f"  [{r.case} / {r.target}] {cmd}" for r, cmd in lines]
    return out


def markdown(report: BenchReport, extra_columns: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """A Markdown table (latencies in ms) with optional extra columns keyed by target label."""
    extra = dict(extra_columns or {})
    head = ["case", "target", "shapes", *extra, "p50 ms", "p90 ms", "p99 ms", "mean ± std ms"]
    head += ["samples/s", "first call ms", "speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    for row in rows(report):
        cells = [row["case"], row["target"], row["shapes"]]
        cells += [_fmt(values.get(row["target"], "")) for values in extra.values()]
        cells += [f"{row['p50']:.3f}", f"{row['p90']:.3f}", f"{row['p99']:.3f}"]
        cells += [f"{row['mean']:.3f} ± {row['std']:.3f}", f"{row['samples_per_s']:.1f}"]
        cells += [f"{row['first_call_ms']:.2f} ({row['first_call_after']})", f"{row['speedup_p50']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + _footer(report) + "\n"


def csv_text(report: BenchReport) -> str:
    buffer = io.StringIO()
    data = rows(report)
    writer = csv.DictWriter(buffer, fieldnames=list(data[0]) if data else ["case", "target"])
    writer.writeheader()
    writer.writerows(data)
    return buffer.getvalue()


def _footer(report: BenchReport) -> str:
    return (
        environment_line(report) + ". Latency in ms; speed-up is the first target's p50 over each target's."
    )


def environment_line(report: BenchReport) -> str:
    """Where and how the latencies were measured: host, library, backends, budget, GPU, Jetson."""
    host = report.environment.get("host", {})
    libs = report.environment.get("libraries", {})
    backends = {
        f"{b.get('backend')} ({b.get('provider', '?')})" for b in report.environment.get("backends", [])
    }
    c = report.config
    budget = f"{c.iterations} calls" if c.iterations else f"{c.duration_s:g} s"
    parts = [
        f"{host.get('cpu', '?')}, {host.get('cores_usable', '?')} cores",
        f"onnxruntime {libs.get('onnxruntime') or libs.get('onnxruntime-gpu') or '-'}",
        ", ".join(sorted(backends)),
        f"warm-up {c.warmup_s:g} s, {budget} per target and case, interleaved",
    ]
    gpus = report.environment.get("gpus") or []
    if gpus:
        parts.append(", ".join(f"{g['name']} (driver {g['driver_version']})" for g in gpus))
    jetson = report.environment.get("jetson")
    if jetson:
        parts.append(f"{jetson.get('model')} power mode {jetson.get('power_mode')}")
    return "; ".join(parts)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
