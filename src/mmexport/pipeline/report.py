"""The pipeline's report folder: one table with accuracy and latency per variant, JSON, PNG.

Rendering only formats a PipelineResult; ``write_report`` writes the plot, then report.json,
then report.md, each atomically, so report.md exists only once everything else is in place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mmexport.core.errors import MissingDependencyError
from mmexport.core.files import atomic_write_text, utc_now
from mmexport.pipeline.run import PipelineResult

FORMAT = "mmexport.pipeline"
FORMAT_VERSION = 1
PLOT_FILE = "latency.png"


def size_mb(path: Path) -> float:
    """The artifact's size with its external-data file, if any."""
    data = path.with_name(f"{path.name}.data")
    return (path.stat().st_size + (data.stat().st_size if data.exists() else 0)) / 1e6


def variant_rows(result: PipelineResult) -> list[dict[str, Any]]:
    """One row per variant (ONNX files, then TensorRT engines where built): precision, size, task
    accuracy, drop and latency per bench case."""
    paths = [*result.variants, *(Path(e) for e in result.engine.get("engines", []))]
    rows = []
    for path, variant in zip(paths, result.accuracy.variants, strict=True):
        engine = path.suffix == ".engine"
        rows.append(
            {
                "variant": path.name,
                "precision": f"TensorRT {variant.precision}" if engine else variant.precision,
                "size_mb": round(size_mb(path), 3),
                "task_accuracy": variant.accuracy,
                "drop_points": result.accuracy.drop(variant),
                # worst per-sample cosine to the reference over every output (None: the reference)
                "min_cosine": variant.worst_cosine() if variant.outputs else None,
                "provider": _provider(result, path),
                "latency": _latency(result, path),
            }
        )
    return rows


def _provider(result: PipelineResult, path: Path) -> str | None:
    """Where the variant was measured: onnxruntime's execution provider, or ``tensorrt``."""
    for target in result.bench.targets:
        if target.label == path.name:
            return target.backend.get("provider") or target.backend.get("backend")
    return None


def _latency(result: PipelineResult, path: Path) -> dict[str, dict[str, float]]:
    latency = {}
    for case in result.bench.cases:
        r = result.bench.result(path.name, case)
        latency[case] = {
            "batch": r.batch,
            "p50_ms": r.stats.p50,
            "p90_ms": r.stats.p90,
            "samples_per_s": r.samples_per_s,
        }
    return latency


UNMEASURED_DROP_MIN_COSINE = 0.99
"""Where no drop is measured (no labels, no classifier output), the drop gate is this cosine."""


def gate_failures(row: dict[str, Any], gates: dict[str, float | None]) -> list[str]:
    """The accuracy gates ``row`` misses (``max_accuracy_drop`` points, ``min_cosine``)."""
    failed = []
    drop, cosine = row.get("drop_points"), row.get("min_cosine")
    limit = gates.get("max_accuracy_drop")
    if limit is not None and drop is not None and drop > limit:
        failed.append(f"drop {drop:.2f} > {limit:g} points")
    floor = gates.get("min_cosine")
    if floor is None and drop is None and limit is not None:
        floor = UNMEASURED_DROP_MIN_COSINE  # no labels and no classifier output: agreement gates it
    if floor is not None and cosine is not None and cosine < floor:
        failed.append(f"min cosine {cosine:.5f} < {floor:g}")
    return failed


def recommend(
    rows: list[dict[str, Any]], case: str, gates: dict[str, float | None], cpu_flags: list[str] | None = None
) -> dict[str, Any] | None:
    """The fastest variant (lowest p50 at ``case``) among those within ``gates``, why, which were
    excluded, and why each FP16 / INT8 variant slower than FP32 on the same provider is slower
    (``bench.advice``). None without rows measured at ``case``."""
    from mmexport.bench.advice import slower_reason

    measured = [{**r, "kind": _kind(r["precision"])} for r in rows if case in r["latency"]]
    excluded = {r["variant"]: gate_failures(r, gates) for r in measured}
    within = [r for r in measured if not excluded[r["variant"]]]
    if not within:
        return None
    best = min(within, key=lambda r: r["latency"][case]["p50_ms"])
    batch = best["latency"][case]["batch"]
    limits = (
        [f"drop <= {gates['max_accuracy_drop']:g} points"]
        if gates.get("max_accuracy_drop") is not None
        else []
    )
    if gates.get("min_cosine") is not None:
        limits.append(f"min cosine >= {gates['min_cosine']:g}")
    why = (
        f"fastest p50 at batch {batch} ({case}, {best['latency'][case]['p50_ms']:.3f} ms) among variants "
        f"within the gates ({', '.join(limits) or 'none'})"
    )
    slower = {}
    for fp32 in (r for r in measured if r["kind"] == "fp32"):
        base = fp32["latency"][case]["p50_ms"]
        for r in measured:
            if r["provider"] != fp32["provider"] or r["latency"][case]["p50_ms"] <= base:
                continue
            reason = slower_reason(r["kind"], r["provider"], cpu_flags)
            if reason is not None:
                ratio = r["latency"][case]["p50_ms"] / base
                slower[r["variant"]] = (
                    f"{ratio:.2f}x slower than {fp32['variant']} at batch {batch}: {reason}"
                )
    return {
        "variant": best["variant"],
        "case": case,
        "batch": batch,
        "why": why,
        "excluded": {name: failed for name, failed in excluded.items() if failed},
        "slower_than_fp32": slower,
    }


def _kind(precision: str) -> str:
    """``fp32``, ``fp16`` or ``int8`` (``int8-qdq`` counts as int8; an engine's is ``TensorRT ...``)."""
    text = precision.lower()
    return "int8" if text.startswith("int8") else text


def recommendation(result: PipelineResult) -> dict[str, Any] | None:
    """``recommend`` at the largest benchmarked batch (the spec's opt shape), on this machine."""
    from mmexport.bench.advice import dot_product_flags

    if not result.bench.cases:
        return None
    gates = result.gates or {"max_accuracy_drop": None, "min_cosine": None}
    return recommend(variant_rows(result), result.bench.cases[-1], gates, dot_product_flags())


def recommendation_lines(rec: dict[str, Any] | None) -> list[str]:
    """report.md's lines: the recommended variant and why, excluded variants, slower ones and why."""
    if rec is None:
        return []
    lines = [f"Recommended: {rec['variant']} (why: {rec['why']})."]
    for name, failed in rec["excluded"].items():
        lines.append(f"- {name}: outside the gates ({'; '.join(failed)}).")
    for name, reason in rec["slower_than_fp32"].items():
        lines.append(f"- {name}: {reason}")
    return lines


def to_dict(result: PipelineResult) -> dict[str, Any]:
    """report.json: the summary rows, the full accuracy and bench reports, notes and timings."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": utc_now(),
        "model": result.model,
        "builtin": result.builtin,
        "files": [p.name for p in result.variants]
        + [result.calibration["cache"]]
        + [Path(e).name for e in result.engine.get("engines", [])],
        "variants": variant_rows(result),
        "gates": result.gates,
        "recommendation": recommendation(result),
        "calibration": result.calibration,
        "engine": result.engine,
        "accuracy": result.accuracy.to_dict(),
        "bench": result.bench.to_dict(),
        "notes": result.notes,
        "seconds": result.seconds,
    }


def table(result: PipelineResult) -> str:
    """The Markdown table: accuracy and latency side by side, one row per variant."""
    head = ["variant", "precision", "size MB", "task accuracy", "drop (points)", "min cosine"]
    for case in result.bench.cases:
        head += [f"p50 / p90 ms ({case})", f"samples/s ({case})"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for row in variant_rows(result):
        cells = [row["variant"], row["precision"], f"{row['size_mb']:.2f}"]
        cells += [_pct(row["task_accuracy"]), _num(row["drop_points"]), _cos(row["min_cosine"])]
        for case in result.bench.cases:
            lat = row["latency"][case]
            cells += [f"{lat['p50_ms']:.3f} / {lat['p90_ms']:.3f}", f"{lat['samples_per_s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment_line(result: PipelineResult) -> str:
    """Where the latencies were measured and how (bench's own line, plus the versions that made
    the variants)."""
    from mmexport.bench.render import environment_line as bench_environment

    env = result.bench.environment
    host, libs = env.get("host", {}), env.get("libraries", {})
    return (
        f"{bench_environment(result.bench)}; {host.get('os', '?')}, Python {host.get('python', '?')}, "
        f"torch {libs.get('torch') or '-'}, mmexport {libs.get('mmexport') or '-'}"
    )


def notes(result: PipelineResult) -> list[str]:
    """The report's notes: data, what stayed FP32, calibration, the engine build, warnings."""
    acc, cal = result.accuracy, result.calibration
    drop = "task accuracy points lost" if acc.labelled else "top-1 disagreement (no labels), in points"
    counted = "" if f"{acc.samples} samples" in acc.source else f" ({acc.samples} samples)"
    out = [
        f"Accuracy on {acc.source}{counted}; drop = {drop} against {acc.reference.name}.",
        f"INT8 calibration: {cal['samples']} samples, method {cal['method']}; "
        f"TensorRT calibration cache {cal['cache']}.",
    ]
    for stage, items in result.notes.items():
        out += [f"{stage}: {item}" for item in items]
    return out


def to_markdown(result: PipelineResult) -> str:
    """report.md: title, table, environment, notes, stage timings."""
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    advice = recommendation_lines(recommendation(result))
    lines = [
        f"# mmexport pipeline: {result.model}",
        "",
        table(result),
        "",
        *advice,
        *([""] if advice else []),
        f"Environment: {environment_line(result)}.",
        "",
        "Notes:",
        "",
        *(f"- {n}" for n in notes(result)),
        "",
        f"Stage times: {timings}.",
        "",
    ]
    if (result.folder / PLOT_FILE).exists():
        lines += [f"![latency per call]({PLOT_FILE})", ""]
    return "\n".join(lines)


def write_plot(result: PipelineResult) -> Path | None:
    """latency.png through a temporary name; None and a note when it cannot be drawn (no
    matplotlib, or matplotlib failing): the plot is never worth losing the report over."""
    path = result.folder / PLOT_FILE
    tmp = path.with_name(f".{PLOT_FILE}.tmp.png")
    try:
        result.bench.plot(tmp)
        os.replace(tmp, path)
    except MissingDependencyError:
        reason = "matplotlib is not installed (pip install 'mmexport[plot]')"
    except Exception as e:  # any plotting failure (matplotlib version, backend, disk) becomes a note
        reason = f"plotting failed ({type(e).__name__}: {e})"
    else:
        return path
    tmp.unlink(missing_ok=True)
    result.notes.setdefault("bench", []).append(f"{PLOT_FILE} skipped: {reason}")
    return None


def write_report(result: PipelineResult) -> dict[str, Any]:
    """Write latency.png, report.json and, last, report.md; return report.json's content."""
    write_plot(result)
    payload = to_dict(result)
    atomic_write_text(result.folder / "report.json", json.dumps(payload, indent=2, default=str) + "\n")
    atomic_write_text(result.folder / "report.md", to_markdown(result))
    return payload


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cos(value: float | None) -> str:
    return "-" if value is None else f"{value:.5f}"
