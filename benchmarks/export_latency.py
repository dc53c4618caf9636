"""Export time, and onnxruntime-CPU vs eager-PyTorch latency at the opt point, per built-in model.

    python benchmarks/export_latency.py                  # both built-in models, Markdown table
    python benchmarks/export_latency.py --json benchmarks/results/export_latency.json

Latency is measured interleaved (one PyTorch call, one onnxruntime call, repeated) so that
machine drift hits both alike; the ratio column is what to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from mmexport.export import ParityConfig, to_onnx
from mmexport.models import builtin_names, get_builtin


def measure(name: str, iterations: int, warmup_s: float, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.onnx"
        t0 = time.perf_counter()
        result = to_onnx(name, out, parity=ParityConfig(random_points=3))
        total = time.perf_counter() - t0
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Spinning worker threads would keep the cores busy into PyTorch's interleaved calls.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
        size_mb = out.stat().st_size / 1e6

    entry = get_builtin(name)
    spec = entry.spec
    module = entry.build()
    feed = spec.sample_feed(spec.point("opt"), seed=0)
    tensors = {k: torch.from_numpy(v) for k, v in feed.items()}

    def run_torch() -> None:
        with torch.inference_mode():
            module(**tensors)

    def run_ort() -> None:
        session.run(None, feed)

    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        run_torch()
        run_ort()
    times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
    for _ in range(iterations):
        for key, fn in (("torch", run_torch), ("onnxruntime", run_ort)):
            t = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t) * 1e3)
    stats = {k: _stats(v) for k, v in times.items()}
    return {
        "model": name,
        "opt_shapes": {k: list(v.shape) for k, v in feed.items()},
        "onnx_mb": round(size_mb, 3),
        "seconds": {**{k: round(v, 2) for k, v in result.seconds.items()}, "total": round(total, 2)},
        "latency_ms": stats,
        "speedup_p50": round(stats["torch"]["p50"] / stats["onnxruntime"]["p50"], 2),
    }


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {
        "p50": round(float(np.percentile(arr, 50)), 3),
        "p90": round(float(np.percentile(arr, 90)), 3),
        "mean": round(statistics.fmean(values), 3),
        "n": len(values),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | opt shapes | export s | parity s | ONNX MB "
        "| PyTorch p50 ms | onnxruntime p50 ms | speed-up |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in r["opt_shapes"].items())
        lat = r["latency_ms"]
        lines.append(
            f"| {r['model']} | {shapes} | {r['seconds']['export']:.1f} | {r['seconds']['parity']:.1f} "
            f"| {r['onnx_mb']:.2f} | {lat['torch']['p50']:.2f} | {lat['onnxruntime']['p50']:.2f} "
            f"| {r['speedup_p50']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=builtin_names())
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(m, args.iterations, args.warmup, args.threads) for m in args.models]
    environment = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "iterations": args.iterations,
    }
    print(
        f"machine: {environment['cpu']}, {environment['cores']} cores; torch {environment['torch']}, "
        f"onnxruntime {environment['onnxruntime']}; {args.threads} threads; "
        f"{args.iterations} interleaved iterations"
    )
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps({"environment": environment, "models": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
