"""What ``SplitSession``'s content-hash cache key costs per call, by input size.

    python benchmarks/content_hash_cost.py
    python benchmarks/content_hash_cost.py --json benchmarks/results/content_hash_cost.json

``mmexport.split.session.content_hash`` (blake2b over names, dtypes, shapes and bytes) is what
``SplitSession(cache=...)`` computes for a cached part's inputs when no ``cache_keys`` are given. Timed
on the built-in ``fusion`` model's inputs at batch 1 (tokens 1x16 int64, image 1x3x128x128
float32) and on 1 MB and 16 MB float32 arrays: median of ``--repeats`` timings of ``--number``
calls each.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import timeit
from pathlib import Path

import numpy as np

from mmexport.split.session import content_hash

CASES = {
    "tokens 1x16 int64": {"tokens": np.arange(16, dtype=np.int64).reshape(1, 16)},
    "image 1x3x128x128 float32": {"image": np.ones((1, 3, 128, 128), np.float32)},
    "1 MB float32": {"x": np.ones(1 << 18, np.float32)},
    "16 MB float32": {"x": np.ones(1 << 22, np.float32)},
}


def measure(feeds: dict[str, np.ndarray], number: int, repeats: int) -> float:
    """Median µs per call of ``content_hash(feeds)``."""
    times = timeit.repeat(lambda: content_hash(feeds), number=number, repeat=repeats)
    return statistics.median(times) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=7, help="timings per case (median)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    rows = []
    for name, feeds in CASES.items():
        megabytes = sum(a.nbytes for a in feeds.values()) / 1e6
        us = measure(feeds, args.number if megabytes < 4 else max(1, args.number // 20), args.repeats)
        rows.append({"case": name, "megabytes": round(megabytes, 4), "us_per_call": round(us, 2)})
    print(f"machine: {platform.processor() or platform.machine()}; numpy {np.__version__}")
    print("| input | MB | µs per hash | ms per MB |")
    print("|---|---:|---:|---:|")
    for r in rows:
        per_mb = r["us_per_call"] / 1e3 / r["megabytes"] if r["megabytes"] >= 0.01 else float("nan")
        print(f"| {r['case']} | {r['megabytes']:.4f} | {r['us_per_call']:.1f} | {per_mb:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"number": args.number, "repeats": args.repeats, "cases": rows}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
