"""What ``mmexport.runtime.Session.run`` costs over a bare ``onnxruntime.InferenceSession.run``.

    python benchmarks/session_overhead.py                     # built-in fusion model, batch 1, 1 thread
    python benchmarks/session_overhead.py --json benchmarks/results/session_overhead.json

Exports the model into a temporary folder, opens the same ONNX three times (a Session and two
bare InferenceSessions, same thread count, worker threads not spinning), then runs rounds: each
round alternates one call of Session and one of bare, and one of the second bare session and one
of bare (the control: what the method itself reports for two identical sessions); the order
flips every round (ABBA), since the position in the call order alone moves a p50 by several
percent. Reported: the median per-round p50 ratio, its min and max. Goal: median ratio <= 1.03.
Where the cost is: the backend's own run (no validation, no call bookkeeping) against bare, the
same way, and the pure Python cost of each layer per call in microseconds, measured over a stub
session that returns at once (validation, call bookkeeping, backend).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from mmexport import to_onnx
from mmexport.bench import collect_environment
from mmexport.bench.cases import ShapeCase, resolve_point
from mmexport.export import ParityConfig
from mmexport.runtime import Session

GOAL = 1.03
Call = Callable[[], object]


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


def bare_session(path: Path, threads: int | None) -> ort.InferenceSession:
    """A bare InferenceSession as Session opens it: same threads, worker threads not spinning."""
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def one_round(a: Call, b: Call, calls: int, a_first: bool) -> tuple[float, float]:
    """p50 ms of ``a`` and ``b`` over ``calls`` alternating calls each, ``a`` first or second."""
    order = ((0, a), (1, b)) if a_first else ((1, b), (0, a))
    times: tuple[list[float], list[float]] = ([], [])
    clock = time.perf_counter
    for _ in range(calls):
        for key, fn in order:
            start = clock()
            fn()
            times[key].append((clock() - start) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def summarize(rounds: list[tuple[float, float]], names: tuple[str, str]) -> dict:
    """Median per-round ratio a / b with its spread (min, max), and each side's median p50."""
    ratios = [a / b for a, b in rounds]
    return {
        "median_ratio": round(statistics.median(ratios), 4),
        "min_ratio": round(min(ratios), 4),
        "max_ratio": round(max(ratios), 4),
        "round_ratios": [round(r, 4) for r in ratios],
        "p50_ms": {name: round(statistics.median(r[i] for r in rounds), 4) for i, name in enumerate(names)},
    }


def measure(path: Path, batch: int, rounds: int, calls: int, warmup_s: float, threads: int | None) -> dict:
    """Session vs bare, and a second bare session vs bare (the control), measured the same way.

    Each round times both comparisons; the call order flips every round (A-B, then B-A: ABBA),
    so that a call's position (what ran just before it) weighs on both sides alike."""
    session = Session(path, threads=threads, spin=False)
    bare, bare2 = bare_session(path, threads), bare_session(path, threads)
    point = resolve_point(session.spec, ShapeCase("opt", batch=batch))
    feed = session.spec.sample_feed(point, seed=0)
    np.testing.assert_array_equal(session.run(feed)["logits"], bare.run(None, feed)[0])
    ours = partial(session.run, feed)
    theirs = partial(bare.run, None, feed)
    control = partial(bare2.run, None, feed)
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        ours(), theirs(), control()
    backend = partial(session._backend.run, feed)
    main_rounds, control_rounds, backend_rounds = [], [], []
    for r in range(rounds):
        main_rounds.append(one_round(ours, theirs, calls, a_first=r % 2 == 0))
        control_rounds.append(one_round(control, theirs, calls, a_first=r % 2 == 0))
        backend_rounds.append(one_round(backend, theirs, calls // 2, a_first=r % 2 == 1))
    validate = []
    for _ in range(2000):
        start = time.perf_counter()
        session.validate(feed)
        validate.append((time.perf_counter() - start) * 1e6)
    layers = python_cost(path, feed, threads)
    return {
        "shapes": {k: list(v.shape) for k, v in feed.items()},
        "rounds": rounds,
        "calls_per_round": calls,
        "spin": False,
        "session_vs_bare": summarize(main_rounds, ("session", "bare")),
        "control_bare_vs_bare": summarize(control_rounds, ("bare 2", "bare")),
        "backend_vs_bare": summarize(backend_rounds, ("backend", "bare")),
        "validation_p50_us": round(statistics.median(validate), 2),
        "python_us_per_call": layers,
        "goal": GOAL,
    }


def python_cost(path: Path, feed: dict, threads: int | None, calls: int = 20000) -> dict[str, float]:
    """Microseconds per call of each layer's Python, over a stub onnxruntime session that returns
    at once: what ``Session.run`` adds, apart from onnxruntime's own time."""

    class Stub:
        def __init__(self, outputs: list[np.ndarray]) -> None:
            self.outputs = outputs

        def run(self, names: object, feeds: object, options: object = None) -> list[np.ndarray]:
            return self.outputs

    session = Session(path, threads=threads, spin=False)
    backend: Any = session._backend
    stub = Stub(backend._session.run(None, feed))
    backend._session = stub
    if hasattr(backend, "_session_run"):  # the compiled binding's run, taken at load
        backend._session_run = stub.run

    def per_call(fn: Call) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            best = min(best, (time.perf_counter() - start) / calls * 1e6)
        return round(best, 3)

    out = {
        "session_run": per_call(partial(session.run, feed)),
        "validation": per_call(partial(session.validate, feed)),
        "backend_run": per_call(partial(session._backend.run, feed)),
        "stub_itself": per_call(partial(stub.run, None, feed)),
    }
    out["call_bookkeeping"] = round(out["session_run"] - out["validation"] - out["backend_run"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="fusion", help="built-in name or file.py:factory")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20, help="rounds; the call order flips each round")
    parser.add_argument("--calls", type=int, default=500, help="calls of each side per round")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(args.model, Path(tmp))
        result = measure(path, args.batch, args.rounds, args.calls, args.warmup, args.threads)
        backends = [Session(path, threads=args.threads, spin=False).describe()]
    result = {"model": args.model, "batch": args.batch, "threads": args.threads, **result}
    env = collect_environment(backends)
    main_, control = result["session_vs_bare"], result["control_bare_vs_bare"]
    verdict = "meets" if main_["median_ratio"] <= GOAL else "MISSES"
    print(
        f"{args.model} batch {args.batch}, {args.rounds} rounds x {args.calls} calls (ABBA):\n"
        f"  Session.run p50 {main_['p50_ms']['session']:.4f} ms vs bare {main_['p50_ms']['bare']:.4f} ms: "
        f"median ratio {main_['median_ratio']:.4f} [{main_['min_ratio']:.4f}, {main_['max_ratio']:.4f}] "
        f"({verdict} the goal <= {GOAL})\n"
        f"  control, bare vs bare: median ratio {control['median_ratio']:.4f} "
        f"[{control['min_ratio']:.4f}, {control['max_ratio']:.4f}]\n"
        f"  backend alone vs bare: median ratio {result['backend_vs_bare']['median_ratio']:.4f}\n"
        f"  validation alone p50 {result['validation_p50_us']:.1f} us; Python per call (us): "
        + ", ".join(f"{k} {v}" for k, v in result["python_us_per_call"].items())
    )
    finish(env, result, args.json)


if __name__ == "__main__":
    main()
