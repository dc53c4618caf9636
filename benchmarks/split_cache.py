"""What caching the text branch of a split export saves in a robot loop: new frames, one command.

    python benchmarks/split_cache.py
    python benchmarks/split_cache.py --json benchmarks/results/split_cache.json

Exports the built-in ``fusion`` model whole and split (into a temporary folder), then plays a
stream at batch 1: every call gets a new camera frame and a new audio window (a ring of
``--frames`` different ones) and the same tokenized command. Measured side by side, interleaved
call by call with the order rotating every round (so drift hits all alike), each call timed
alone with ``time.perf_counter``:

- ``monolithic``: the whole-model ONNX in a ``Session``;
- ``pipeline``: the split export in a ``SplitSession``, no cache;
- ``cached-key``: ``SplitSession(cache={"text"})`` with ``cache_keys={"text": command id}``;
- ``cached-hash``: ``SplitSession(cache={"text"})``, the tokens recognised by their content hash
  (its cost included).

Two thread settings, each measured as above: onnxruntime's default thread count with the
encoders run concurrently, and one intra-op thread per session with the parts run in turn.

Every session has worker threads not spinning (they would steal the next call's cores). Reported:
p50 and p90 per variant and p50 ratios; the outputs of all four are checked to agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmexport import to_onnx
from mmexport.bench import collect_environment
from mmexport.export import ParityConfig
from mmexport.runtime import Session
from mmexport.split import SplitSession
from mmexport.split.export import to_onnx_split

Run = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def export_both(folder: Path) -> tuple[Path, Path]:
    print("exporting fusion whole and split ...", file=sys.stderr)
    gate = ParityConfig(random_points=0)
    whole = to_onnx("fusion", folder / "fusion.onnx", parity=gate).path
    split = to_onnx_split("fusion", folder / "fusion", parity=gate).folder
    return whole, split


def stream(session: Session, frames: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``frames`` feeds at the opt sizes with batch 1: new image and audio each, one command."""
    spec = session.spec
    point = {**spec.point("opt"), "batch": 1}
    feeds = [spec.sample_feed(point, seed=seed + k) for k in range(frames)]
    command = feeds[0]["tokens"]
    return [{**f, "tokens": command} for f in feeds]


def measure(runs: dict[str, Run], feeds: list[dict[str, np.ndarray]], rounds: int) -> dict[str, list[float]]:
    """Per variant: seconds of each call; every round runs each variant on the next frame, the
    variants' order rotating by one each round."""
    names = list(runs)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        feed = feeds[r % len(feeds)]
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            runs[name](feed)
            times[name].append(time.perf_counter() - start)
    return times


CONFIGS = {
    "default": {"threads": None, "parallel": True},  # onnxruntime's thread count, encoders concurrent
    "1-thread-serial": {"threads": 1, "parallel": False},  # one intra-op thread, parts in turn
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--frames", type=int, default=64, help="distinct frames in the ring")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results, environment = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        whole_path, folder = export_both(Path(tmp))
        for label, config in CONFIGS.items():
            print(f"{label}: measuring {args.rounds} interleaved rounds ...", file=sys.stderr)
            results[label], environment = run_config(whole_path, folder, config, args)
    for label, result in results.items():
        print_result(label, result, environment)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": environment, "results": results}, indent=2) + "\n")


def run_config(whole_path: Path, folder: Path, config: dict, args: argparse.Namespace) -> tuple[dict, dict]:
    """The four variants with one thread setting, measured interleaved; outputs checked to agree."""
    threads, parallel = config["threads"], config["parallel"]
    whole = Session(whole_path, threads=threads, spin=False)
    split = {"threads": threads, "spin": False, "parallel": parallel}
    plain = SplitSession(folder, **split)
    keyed = SplitSession(folder, cache={"text"}, **split)
    hashed = SplitSession(folder, cache={"text"}, **split)
    feeds = stream(whole, args.frames)
    runs: dict[str, Run] = {
        "monolithic": whole.run,
        "pipeline": plain.run,
        "cached-key": lambda f: keyed.run(f, cache_keys={"text": "command-1"}),
        "cached-hash": hashed.run,
    }
    check = {name: run(feeds[1]) for name, run in runs.items()}
    for name, out in check.items():
        np.testing.assert_allclose(
            out["logits"], check["monolithic"]["logits"], atol=1e-4, rtol=1e-3, err_msg=name
        )
    measure(runs, feeds, args.warmup)
    keyed.clear_cache()
    hashed.clear_cache()
    times = measure(runs, feeds, args.rounds)
    shapes = whole.spec.shapes({**whole.spec.point("opt"), "batch": 1})
    result = summarize(times, keyed.cache_info(), hashed.cache_info(), args, shapes)
    result["config"] = config
    environment = collect_environment([whole.describe(), plain.describe()])
    for s in (whole, plain, keyed, hashed):
        s.close()
    return result, environment


def summarize(
    times: dict[str, list[float]], keyed: dict, hashed: dict, args: argparse.Namespace, shapes: dict
) -> dict:
    stats = {
        name: {
            "p50_ms": float(np.percentile(t, 50) * 1e3),
            "p90_ms": float(np.percentile(t, 90) * 1e3),
            "mean_ms": float(np.mean(t) * 1e3),
            "calls": len(t),
        }
        for name, t in times.items()
    }
    base, plain = stats["monolithic"]["p50_ms"], stats["pipeline"]["p50_ms"]
    return {
        "model": "fusion",
        "shapes": {k: list(v) for k, v in shapes.items()},
        "rounds": args.rounds,
        "warmup_rounds": args.warmup,
        "distinct_frames": args.frames,
        "latency": stats,
        "p50_over_monolithic": {n: s["p50_ms"] / base for n, s in stats.items()},
        "p50_over_pipeline": {n: s["p50_ms"] / plain for n, s in stats.items()},
        "cache_info": {"cached-key": keyed, "cached-hash": hashed},
    }


def print_result(label: str, result: dict, env: dict) -> None:
    config = result["config"]
    print(f"\n{label}: threads {config['threads'] or 'onnxruntime default'}, parallel {config['parallel']}")
    print(
        f"machine: {env['host']['cpu']}, {env['host']['cores_usable']} cores; "
        f"onnxruntime {env['libraries']['onnxruntime']}; batch 1, "
        + ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in result["shapes"].items())
    )
    print("| variant | p50 ms | p90 ms | p50 / monolithic | p50 / uncached pipeline |")
    print("|---|---:|---:|---:|---:|")
    for name, s in result["latency"].items():
        print(
            f"| {name} | {s['p50_ms']:.3f} | {s['p90_ms']:.3f} | "
            f"{result['p50_over_monolithic'][name]:.2f} | {result['p50_over_pipeline'][name]:.2f} |"
        )
    info = result["cache_info"]
    print(f"text cache: key {info['cached-key']['text']}, hash {info['cached-hash']['text']}")


if __name__ == "__main__":
    main()
