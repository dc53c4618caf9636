"""Eager PyTorch vs onnxruntime (CPU) FP32 / FP16 / INT8 for the built-in models at batch 1, 8, 32.

Variants are made with the same stages as the CLI (to-onnx, fp16, calibrate), then timed at the
spec's opt point with the batch dim set, all four interleaved call by call so that machine drift
hits them alike, the order rotating every round so that no variant always follows the same
one. Compare the ratios: this shared machine is noisy.

    python benchmarks/precision_latency.py --json benchmarks/results/precision_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import onnxruntime as ort
import torch
from export_latency import _stats, cpu_name

from mmexport.export import ParityConfig, to_onnx
from mmexport.models import get_builtin
from mmexport.precision.stages import CalibrationConfig, calibrate, to_fp16

MODELS = ("fusion", "seed")
BATCHES = (1, 8, 32)
VARIANTS = ("torch", "fp32", "fp16", "int8")
T = TypeVar("T")


def make_variants(name: str, folder: Path) -> dict[str, Path]:
    fp32 = to_onnx(name, folder / f"{name}.onnx", parity=ParityConfig(random_points=0)).path
    fp16 = to_fp16(fp32, folder / f"{name}.fp16.onnx", eval_samples=50).path
    config = CalibrationConfig(samples=256, sensitivity=False)
    int8 = calibrate(fp32, folder / f"{name}.int8.onnx", config=config, eval_samples=50).path
    return {"fp32": fp32, "fp16": fp16, "int8": int8}


def rotated(items: list[T], shift: int) -> list[T]:
    """``items`` rotated left by ``shift``: each round starts with the next variant, so that every
    variant runs in every position (first after the previous round, after each other variant)
    equally often; a fixed order moves a variant's p50 by several percent on its position alone."""
    shift %= len(items)
    return items[shift:] + items[:shift]


def time_interleaved(runners: dict[str, Callable[[], object]], iterations: int, warmup_s: float) -> dict:
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        for fn in runners.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(iterations):
        for key, fn in rotated(list(runners.items()), i):
            t = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t) * 1e3)
    return {k: _stats(v) for k, v in times.items()}


def runners_for(
    module: torch.nn.Module, sessions: dict[str, ort.InferenceSession], feed: dict
) -> dict[str, Callable[[], object]]:
    tensors = {k: torch.from_numpy(v) for k, v in feed.items()}

    def run_torch() -> None:
        with torch.inference_mode():
            module(**tensors)

    runners: dict[str, Callable[[], object]] = {"torch": run_torch}
    for key, session in sessions.items():
        runners[key] = lambda s=session: s.run(None, feed)
    return runners


def measure(
    name: str, folder: Path, iterations: int, warmup_s: float, threads: int, spin: bool = False
) -> list[dict]:
    paths = make_variants(name, folder)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Spinning worker threads would keep the cores busy into the next variant's call (--spin
    # shows by how much).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    sessions = {
        k: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for k, p in paths.items()
    }
    entry = get_builtin(name)
    module = entry.build()
    rows = []
    for batch in BATCHES:
        point = {**entry.spec.point("opt"), "batch": batch}
        feed = entry.spec.sample_feed(point, seed=0)

        runners = runners_for(module, sessions, feed)
        stats = time_interleaved(runners, max(30, iterations // batch), warmup_s)
        rows.append(
            {
                "model": name,
                "batch": batch,
                "shapes": {k: list(v.shape) for k, v in feed.items()},
                "latency_ms": stats,
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | batch | PyTorch p50 ms | FP32 p50 ms | FP16 p50 ms | INT8 p50 ms "
        "| FP32 / FP16 / INT8 speed-up vs PyTorch |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        p50 = {k: r["latency_ms"][k]["p50"] for k in VARIANTS}
        ups = " / ".join(f"{p50['torch'] / p50[k]:.2f}x" for k in ("fp32", "fp16", "int8"))
        lines.append(
            f"| {r['model']} | {r['batch']} | {p50['torch']:.2f} | {p50['fp32']:.2f} | {p50['fp16']:.2f} "
            f"| {p50['int8']:.2f} | {ups} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    parser.add_argument("--iterations", type=int, default=200, help="calls per variant at batch 1")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up per batch size")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--spin", action="store_true", help="let onnxruntime's idle threads spin (onnxruntime's default)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            rows += measure(name, Path(tmp), args.iterations, args.warmup, args.threads, args.spin)
    header = (
        f"machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}; {args.threads} threads, spinning {'on' if args.spin else 'off'}; "
        "opt shapes with the batch dim set"
    )
    print(header + "\n")
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": header, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
