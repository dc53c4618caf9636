"""Does ``mmexport bench``'s harness agree with an independent ``time.perf_counter`` loop, and
with a bare onnxruntime loop (what the harness's p50 adds: Session's validation and bookkeeping)?

    python benchmarks/harness_agreement.py                    # built-in fusion model, opt point
    python benchmarks/harness_agreement.py --json benchmarks/results/harness_agreement.json

Exports the model into a temporary folder, then runs short rounds, each made of the harness
(``mmexport.bench.benchmark``, one Session) for ``--seconds``, a plain loop over a second
Session and a plain loop over a bare ``onnxruntime.InferenceSession`` (same threads, worker
threads not spinning, as the harness opens artifacts), each for the same number of calls, each
call timed alone; the order flips every round. Figures: the median over rounds of harness p50 /
Session-loop p50 (the harness's timing, goal: within 5%) and of harness p50 / bare-loop p50
(what a user's bare onnxruntime loop would see; Session's overhead included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from session_overhead import bare_session, export_model, finish  # this folder is on sys.path as a script

from mmexport.bench import BenchConfig, BenchTarget, ShapeCase, benchmark, collect_environment, resolve_point
from mmexport.runtime import Session

GOAL = 0.05


def plain_loop(run: Callable[[], object], calls: int, warmup_s: float) -> list[float]:
    """``calls`` calls of ``run`` after ``warmup_s`` of warm-up, each timed alone (ms)."""
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        run()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def measure(path: Path, case: ShapeCase, rounds: int, seconds: float, warmup_s: float) -> dict:
    harness_session, loop_session = Session(path, spin=False), Session(path, spin=False)
    bare = bare_session(path, None)
    feed = loop_session.spec.sample_feed(resolve_point(loop_session.spec, case), seed=0)
    loops = {"loop": partial(loop_session.run, feed), "bare": partial(bare.run, None, feed)}
    config = BenchConfig(warmup_s=warmup_s, duration_s=seconds)
    rows = []
    pooled: dict[str, list[float]] = {"harness": [], "loop": [], "bare": []}
    calls = 0
    for r in range(rounds):
        loops_first = r % 2 == 1  # odd rounds: the loops first, with the previous round's count
        p50: dict[str, float] = {}
        if loops_first:
            for name, run in loops.items():
                pooled[name] += (times := plain_loop(run, calls, warmup_s))
                p50[name] = statistics.median(times)
        result = benchmark([BenchTarget(label="harness", runner=harness_session)], [case], config).results[0]
        calls = result.stats.count
        if not loops_first:
            for name, run in reversed(loops.items()):
                pooled[name] += (times := plain_loop(run, calls, warmup_s))
                p50[name] = statistics.median(times)
        pooled["harness"] += result.samples_ms.tolist()
        rows.append(
            {
                "round": r + 1,
                "calls": result.stats.count,
                "harness_p50_ms": round(result.stats.p50, 4),
                "loop_p50_ms": round(p50["loop"], 4),
                "bare_p50_ms": round(p50["bare"], 4),
                "ratio": round(result.stats.p50 / p50["loop"], 4),
                "ratio_to_bare": round(result.stats.p50 / p50["bare"], 4),
            }
        )
        print(
            f"  round {r + 1}: harness {rows[-1]['harness_p50_ms']} ms, Session loop "
            f"{rows[-1]['loop_p50_ms']} ms, bare onnxruntime loop {rows[-1]['bare_p50_ms']} ms",
            file=sys.stderr,
        )
    ratio = statistics.median(row["ratio"] for row in rows)
    return {
        "shapes": result.shapes,
        "rounds": rows,
        "harness_p50_ms": round(statistics.median(pooled["harness"]), 4),
        "loop_p50_ms": round(statistics.median(pooled["loop"]), 4),
        "bare_p50_ms": round(statistics.median(pooled["bare"]), 4),
        "ratio": round(ratio, 4),
        "relative_difference": round(abs(ratio - 1), 4),
        "ratio_to_bare": round(statistics.median(row["ratio_to_bare"] for row in rows), 4),
        "goal": GOAL,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="fusion", help="built-in name or file.py:factory")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the spec's opt)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=0.5, help="harness duration per round")
    parser.add_argument("--warmup", type=float, default=0.2)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    case = ShapeCase("opt", batch=args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(args.model, Path(tmp))
        result = measure(path, case, args.rounds, args.seconds, args.warmup)
        backends = [Session(path).describe()]
    result = {"model": args.model, **result}
    env = collect_environment(backends)
    verdict = "meets" if result["relative_difference"] <= GOAL else "MISSES"
    shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in result["shapes"].items())
    print(
        f"{args.model} ({shapes}): harness p50 {result['harness_p50_ms']:.4f} ms, "
        f"Session loop p50 {result['loop_p50_ms']:.4f} ms, bare onnxruntime loop p50 "
        f"{result['bare_p50_ms']:.4f} ms (all rounds pooled); median of per-round ratios: harness / "
        f"Session loop {result['ratio']:.4f} ({verdict} the goal: within {GOAL:.0%}), harness / bare "
        f"onnxruntime {result['ratio_to_bare']:.4f}"
    )
    finish(env, result, args.json)


if __name__ == "__main__":
    main()
