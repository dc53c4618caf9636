"""Peak memory of `mmexport calibrate` against the number of calibration samples, per method.

Each measurement runs in its own process (peak RSS is per process) on the built-in fusion model
with 224x224 images, the size at which onnxruntime's own histogram calibrators were measured
to grow by ~37 MB per sample. Goal: peak at 512 samples <= 1.25x the peak at 32, for every
method, and within 1.5x of minmax.

    python benchmarks/calibration_memory.py --json benchmarks/results/calibration_memory.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("minmax", "entropy", "percentile")
SIZES = (32, 512)
GOAL_GROWTH = 1.25
GOAL_VS_MINMAX = 1.5


def child(model: str, method: str, samples: int, image: int) -> None:
    """One calibration; prints its peak RSS (MB) and duration as JSON."""
    from mmexport.data.synthetic import SyntheticTask
    from mmexport.precision.stages import CalibrationConfig, calibrate

    class Stream:  # re-iterable, one batch of 8 alive at a time: images image x image, 1 s audio
        def __iter__(self):
            task = SyntheticTask(with_audio=True, seed=7)
            return (feed for feed, _ in task.samples(samples, 8, height=image, width=image))

    out = Path(tempfile.mkdtemp()) / "model.int8.onnx"
    t0 = time.perf_counter()
    config = CalibrationConfig(method=method, samples=samples, sensitivity=False)
    calibrate(model, out, data=Stream(), config=config, eval_samples=16)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"peak_rss_mb": peak_mb, "seconds": seconds}))


def export(folder: Path) -> Path:
    path = folder / "fusion.onnx"
    subprocess.run(["mmexport", "to-onnx", "fusion", "-o", str(path), "-q"], check=True)
    return path


def measure(model: Path, method: str, samples: int, image: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", str(model), method, str(samples), str(image)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--image", type=int, default=224, help="image height and width")
    parser.add_argument(
        "--child", nargs=4, metavar=("MODEL", "METHOD", "SAMPLES", "IMAGE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        model, method, samples, image = args.child
        child(model, method, int(samples), int(image))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = export(Path(tmp))
        rows = []
        for method in METHODS:
            for samples in SIZES:
                result = measure(model, method, samples, args.image)
                rows.append({"method": method, "samples": samples, **result})
                mb, seconds = result["peak_rss_mb"], result["seconds"]
                print(f"  {method:<10} {samples:>4} samples: {mb:.1f} MB, {seconds:.1f} s", flush=True)
    peak = {(r["method"], r["samples"]): r["peak_rss_mb"] for r in rows}
    minmax_max = peak[("minmax", SIZES[-1])]
    summary = []
    print(f"\n| method | peak RSS, {SIZES[0]} samples | peak RSS, {SIZES[-1]} samples | growth | vs minmax |")
    print("|---|---|---|---|---|")
    for method in METHODS:
        low, high = peak[(method, SIZES[0])], peak[(method, SIZES[-1])]
        growth, vs_minmax = high / low, high / minmax_max
        ok = growth <= GOAL_GROWTH and vs_minmax <= GOAL_VS_MINMAX
        summary.append({"method": method, "growth": growth, "vs_minmax": vs_minmax, "meets_goal": ok})
        print(f"| {method} | {low:.1f} MB | {high:.1f} MB | {growth:.2f}x | {vs_minmax:.2f}x |")
    result = {
        "image": args.image,
        "goal": {"growth_max": GOAL_GROWTH, "vs_minmax_max": GOAL_VS_MINMAX},
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "rows": rows,
        "summary": summary,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not all(s["meets_goal"] for s in summary):
        sys.exit("memory goal not met")


if __name__ == "__main__":
    main()
