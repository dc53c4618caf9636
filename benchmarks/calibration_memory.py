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
ONNXRUNTIME = "onnxruntime-entropy"
ONNXRUNTIME_SIZES = (32, 64)  # its memory grows per sample: 512 would take gigabytes
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


def child_onnxruntime(model: str, samples: int, image: int) -> None:
    """onnxruntime's own entropy calibration (quantize_static) for comparison.

    Text length is fixed at 16 tokens here: with batches of different shapes (variable text
    length, as in the runs above) onnxruntime 1.32's histogram calibrators fail with
    "ValueError: ... inhomogeneous shape" when they stack the outputs they kept.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from mmexport.data.synthetic import SyntheticTask

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            task = SyntheticTask(with_audio=True, seed=7)
            self.batches = (f for f, _ in task.samples(samples, 8, height=image, width=image, seq=16))

        def get_next(self):
            return next(self.batches, None)

    out = Path(tempfile.mkdtemp()) / "ort.int8.onnx"
    t0 = time.perf_counter()
    quantize_static(
        model,
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.Entropy,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
        "--onnxruntime",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure onnxruntime's own entropy calibrator at 32 and 64 samples",
    )
    parser.add_argument(
        "--child", nargs=4, metavar=("MODEL", "METHOD", "SAMPLES", "IMAGE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        model, method, samples, image = args.child
        if method == ONNXRUNTIME:
            child_onnxruntime(model, int(samples), int(image))
        else:
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
        reference = []
        if args.onnxruntime:
            for samples in ONNXRUNTIME_SIZES:
                result = measure(model, ONNXRUNTIME, samples, args.image)
                reference.append({"method": ONNXRUNTIME, "samples": samples, **result})
                mb, seconds = result["peak_rss_mb"], result["seconds"]
                print(f"  {ONNXRUNTIME} {samples:>4} samples: {mb:.1f} MB, {seconds:.1f} s", flush=True)
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
    if reference:
        low, high = reference[0], reference[-1]
        per_sample = (high["peak_rss_mb"] - low["peak_rss_mb"]) / (high["samples"] - low["samples"])
        print(
            f"\nonnxruntime quantize_static, entropy (text length fixed at 16): "
            f"{low['peak_rss_mb']:.1f} MB at {low['samples']} samples, {high['peak_rss_mb']:.1f} MB at "
            f"{high['samples']}: +{per_sample:.2f} MB per sample, about "
            f"{low['peak_rss_mb'] + per_sample * (SIZES[-1] - low['samples']):.0f} MB at {SIZES[-1]}"
        )
    result = {
        "image": args.image,
        "onnxruntime_reference": reference,
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
