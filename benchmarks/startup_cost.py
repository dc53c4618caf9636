"""Start-up cost of mmexport.runtime in a fresh process: imports, Session(), first call vs steady p50.

    python benchmarks/startup_cost.py --json benchmarks/results/startup_cost.json

Makes the default model's FP32 / FP16 / INT8 ONNX files as the CLI does (to-onnx, fp16,
calibrate) in a temporary folder. Then, for each file, ``--repeats`` times in a fresh Python
process (the files taking turns, so that machine drift hits all alike), times:

- ``import mmexport.runtime`` (numpy included: the process has imported nothing before it);
- ``import onnxruntime``, which ``Session`` would otherwise do inside its first construction;
- ``Session(path, spin=False)``: manifest, onnxruntime's graph optimizations, validator;
- the first ``run`` at batch 1 (the spec's opt shapes), the second, then the steady-state p50
  and p99 of ``--calls`` calls after ``--warmup`` seconds;
- from the process's start (measured by this parent around the launch: interpreter start-up
  included) to the first output.

Each figure is the median over the processes. CPU only (onnxruntime's CPU provider), worker
threads not spinning, ``--threads`` as onnxruntime's default unless given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL = "fusion"
VARIANTS = ("fp32", "fp16", "int8")
METRICS = (
    ("import_runtime_ms", "import mmexport.runtime ms"),
    ("import_onnxruntime_ms", "import onnxruntime ms"),
    ("session_ms", "Session() ms"),
    ("first_call_ms", "first call ms"),
    ("second_call_ms", "second call ms"),
    ("steady_p50_ms", "steady p50 ms"),
    ("steady_p99_ms", "steady p99 ms"),
    ("process_to_first_output_ms", "process start to first output ms"),
)


def child(path: str, calls: int, warmup_s: float, threads: int | None) -> None:
    """One fresh process's measurements, as one JSON line on stdout. Imports are what is timed."""
    clock = time.perf_counter
    t0 = clock()
    import mmexport.runtime

    t1 = clock()
    import onnxruntime  # noqa: F401 - timed apart from Session()

    t2 = clock()
    session = mmexport.runtime.Session(path, threads=threads, spin=False)
    t3 = clock()
    point = {**session.spec.point("opt"), "batch": 1}
    feed = session.spec.sample_feed(point, seed=0)
    start = clock()
    session.run(feed)
    first_output_at = time.time()
    first = clock() - start
    start = clock()
    session.run(feed)
    second = clock() - start
    end = clock() + warmup_s
    while clock() < end:
        session.run(feed)
    times = []
    for _ in range(calls):
        start = clock()
        session.run(feed)
        times.append((clock() - start) * 1e3)
    times.sort()
    result = {
        "import_runtime_ms": (t1 - t0) * 1e3,
        "import_onnxruntime_ms": (t2 - t1) * 1e3,
        "session_ms": (t3 - t2) * 1e3,
        "first_call_ms": first * 1e3,
        "second_call_ms": second * 1e3,
        "steady_p50_ms": statistics.median(times),
        "steady_p99_ms": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
        "first_output_at": first_output_at,
        "shapes": {k: list(v.shape) for k, v in feed.items()},
    }
    print(json.dumps(result))


def run_child(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(path), "--calls", str(args.calls)]
    command += ["--warmup", str(args.warmup)] + (["--threads", str(args.threads)] if args.threads else [])
    launched = time.time()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: the measuring process failed for {path.name}:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_to_first_output_ms"] = (result.pop("first_output_at") - launched) * 1e3
    return result


def make_variants(folder: Path) -> dict[str, Path]:
    """The default model's FP32 / FP16 / INT8 files, made as precision_latency.py makes them."""
    from precision_latency import make_variants as make

    print(f"making {MODEL} FP32 / FP16 / INT8 ONNX files ...", file=sys.stderr)
    return make(MODEL, folder)


def measure(paths: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in paths}
    for r in range(args.repeats):
        order = list(paths)[r % len(paths) :] + list(paths)[: r % len(paths)]
        for variant in order:
            runs[variant].append(run_child(paths[variant], args))
        print(f"round {r + 1}/{args.repeats} done", file=sys.stderr)
    results: dict[str, Any] = {}
    for variant, rows in runs.items():
        medians = {key: round(statistics.median(row[key] for row in rows), 3) for key, _ in METRICS}
        medians["first_over_p50"] = round(medians["first_call_ms"] / medians["steady_p50_ms"], 2)
        results[variant] = {"median": medians, "shapes": rows[0]["shapes"], "runs": rows}
    return results


def markdown(results: dict[str, Any]) -> str:
    header = "| variant | " + " | ".join(title for _, title in METRICS) + " | first / p50 |"
    lines = [header, "|---|" + "---:|" * (len(METRICS) + 1)]
    for variant, entry in results.items():
        m = entry["median"]
        cells = " | ".join(f"{m[key]:.1f}" if m[key] >= 10 else f"{m[key]:.2f}" for key, _ in METRICS)
        lines.append(f"| {variant.upper()} | {cells} | {m['first_over_p50']:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per file (default 5)")
    parser.add_argument("--calls", type=int, default=200, help="steady-state calls per process (default 200)")
    parser.add_argument(
        "--warmup", type=float, default=0.5, help="seconds before the steady calls (default 0.5)"
    )
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: onnxruntime's)")
    parser.add_argument("--json", type=Path, help="write the figures and the environment here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.calls, args.warmup, args.threads)
    if args.repeats < 1 or args.calls < 1:
        parser.error("--repeats and --calls must be >= 1")

    from mmexport.bench import collect_environment
    from mmexport.runtime import Session

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_variants(Path(tmp))
        backends = [Session(p, threads=args.threads, spin=False).describe() for p in paths.values()]
        results = measure(paths, args)
    env = collect_environment(backends)
    shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in results["fp32"]["shapes"].items())
    machine = (
        f"machine: {env['host']['cpu']}, {env['host']['cores_usable']} cores; "
        f"onnxruntime {env['libraries']['onnxruntime']}; threads {args.threads or 'default'}, spinning off; "
        f"{MODEL} at batch 1 ({shapes}); medians of {args.repeats} fresh processes"
    )
    print(machine + "\n")
    print(markdown(results))
    if args.json:
        config = {"model": MODEL, "repeats": args.repeats, "calls": args.calls, "warmup_s": args.warmup}
        payload = {"machine": machine, "config": {**config, "threads": args.threads}, "results": results}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": env, **payload}, indent=2) + "\n")


if __name__ == "__main__":
    main()
