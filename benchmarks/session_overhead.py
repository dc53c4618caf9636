"""What ``mmexport.runtime.Session.run`` costs over a bare ``onnxruntime.InferenceSession.run``.

    python benchmarks/session_overhead.py                     # built-in fusion model, batch 1
    python benchmarks/session_overhead.py --json benchmarks/results/session_overhead.json

Exports the model into a temporary folder, opens the same ONNX twice (a Session, and a bare
InferenceSession with the same thread count), then alternates one call of each, timed with
``time.perf_counter``, so that machine drift hits both alike. Goal: median ratio <= 1.03.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mmexport import to_onnx
from mmexport.bench import collect_environment
from mmexport.bench.cases import ShapeCase, resolve_point
from mmexport.export import ParityConfig
from mmexport.runtime import Session

GOAL = 1.03


def export_model(model: str, folder: Path) -> Path:
    """The model exported to ``folder/model.onnx`` (with its manifest), for timing only."""
    path = folder / "model.onnx"
    print(f"exporting {model} ...", file=sys.stderr)
    to_onnx(model, path, parity=ParityConfig(random_points=0))
    return path


def finish(env: dict, result: dict, json_path: Path | None) -> None:
    """Print the machine line; write environment and figures as JSON when asked."""
    print(
        f"machine: {env['host']['cpu']}, {env['host']['cores_usable']} cores; "
        f"onnxruntime {env['libraries']['onnxruntime']}"
    )
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"environment": env, "result": result}, indent=2) + "\n")


def measure(path: Path, batch: int, iterations: int, warmup_s: float, threads: int | None) -> dict:
    session = Session(path, threads=threads)
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    bare = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    point = resolve_point(session.spec, ShapeCase("opt", batch=batch))
    feed = session.spec.sample_feed(point, seed=0)
    np.testing.assert_array_equal(session.run(feed)["logits"], bare.run(None, feed)[0])

    def ours() -> None:
        session.run(feed)

    def theirs() -> None:
        bare.run(None, feed)

    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        ours()
        theirs()
    times: dict[str, list[float]] = {"session": [], "bare": []}
    for i in range(iterations):
        pair = (("session", ours), ("bare", theirs)) if i % 2 == 0 else (("bare", theirs), ("session", ours))
        for key, fn in pair:
            start = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - start) * 1e3)
    validate = []
    for _ in range(2000):
        start = time.perf_counter()
        session.validate(feed)
        validate.append((time.perf_counter() - start) * 1e6)
    p50 = {k: statistics.median(v) for k, v in times.items()}
    return {
        "shapes": {k: list(v.shape) for k, v in feed.items()},
        "iterations": iterations,
        "p50_ms": {k: round(v, 4) for k, v in p50.items()},
        "mean_ms": {k: round(statistics.fmean(v), 4) for k, v in times.items()},
        "validation_p50_us": round(statistics.median(validate), 2),
        "median_ratio": round(p50["session"] / p50["bare"], 4),
        "goal": GOAL,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="fusion", help="built-in name or file.py:factory")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=3000, help="calls of each, interleaved")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: onnxruntime's)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(args.model, Path(tmp))
        result = measure(path, args.batch, args.iterations, args.warmup, args.threads)
        backends = [Session(path, threads=args.threads).describe()]
    result = {"model": args.model, "batch": args.batch, **result}
    env = collect_environment(backends)
    verdict = "meets" if result["median_ratio"] <= GOAL else "MISSES"
    print(
        f"{args.model} batch {args.batch}: Session.run p50 {result['p50_ms']['session']:.4f} ms, "
        f"bare InferenceSession.run p50 {result['p50_ms']['bare']:.4f} ms, "
        f"ratio {result['median_ratio']:.4f} ({verdict} the goal <= {GOAL}); "
        f"validation alone p50 {result['validation_p50_us']:.1f} us"
    )
    finish(env, result, args.json)


if __name__ == "__main__":
    main()
