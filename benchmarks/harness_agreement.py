"""Does ``mmexport bench``'s harness agree with an independent ``time.perf_counter`` loop?

    python benchmarks/harness_agreement.py                    # built-in fusion model, opt point
    python benchmarks/harness_agreement.py --json benchmarks/results/harness_agreement.json

Exports the model into a temporary folder, then runs short rounds, each made of the harness
(``mmexport.bench.benchmark``, one Session) for ``--seconds`` and a plain loop over a second
Session for the same number of calls, each call timed alone, in alternating order. The figure
is the median over rounds of (harness p50 / loop p50): short paired rounds keep the drift of a
shared machine out of the comparison. Goal: within 5%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from session_overhead import export_model, finish  # this folder is on sys.path when run as a script

from mmexport.bench import BenchConfig, BenchTarget, ShapeCase, benchmark, collect_environment, resolve_point
from mmexport.runtime import Session

GOAL = 0.05


def plain_loop(session: Session, case: ShapeCase, calls: int, warmup_s: float) -> list[float]:
    feed = session.spec.sample_feed(resolve_point(session.spec, case), seed=0)
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        session.run(feed)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        session.run(feed)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def measure(path: Path, case: ShapeCase, rounds: int, seconds: float, warmup_s: float) -> dict:
    harness_session, loop_session = Session(path), Session(path)
    config = BenchConfig(warmup_s=warmup_s, duration_s=seconds)
    rows = []
    harness_all: list[float] = []
    loop_all: list[float] = []
    calls = 0
    for r in range(rounds):
        loop_first = r % 2 == 1  # odd rounds: the loop first, with the previous round's count
        if loop_first:
            loop = plain_loop(loop_session, case, calls, warmup_s)
        result = benchmark([BenchTarget(label="harness", runner=harness_session)], [case], config).results[0]
        calls = result.stats.count
        if not loop_first:
            loop = plain_loop(loop_session, case, calls, warmup_s)
        harness_all += result.samples_ms.tolist()
        loop_all += loop
        rows.append(
            {
                "round": r + 1,
                "calls": result.stats.count,
                "harness_p50_ms": round(result.stats.p50, 4),
                "loop_p50_ms": round(statistics.median(loop), 4),
                "ratio": round(result.stats.p50 / statistics.median(loop), 4),
            }
        )
        print(
            f"  round {r + 1}: harness {rows[-1]['harness_p50_ms']} ms, loop {rows[-1]['loop_p50_ms']} ms",
            file=sys.stderr,
        )
    harness_p50, loop_p50 = statistics.median(harness_all), statistics.median(loop_all)
    ratio = statistics.median(row["ratio"] for row in rows)
    return {
        "shapes": result.shapes,
        "rounds": rows,
        "harness_p50_ms": round(harness_p50, 4),
        "loop_p50_ms": round(loop_p50, 4),
        "ratio": round(ratio, 4),
        "relative_difference": round(abs(ratio - 1), 4),
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
        f"perf_counter loop p50 {result['loop_p50_ms']:.4f} ms (all rounds pooled); "
        f"median of per-round ratios {result['ratio']:.4f} "
        f"({verdict} the goal: within {GOAL:.0%})"
    )
    finish(env, result, args.json)


if __name__ == "__main__":
    main()
