"""FP32 vs FP16 vs INT8 task accuracy of the built-in models on their held-out synthetic split.

Runs the commands a user runs (to-onnx, fp16, calibrate, accuracy) and prints one Markdown
table; docs/precision.md's table comes from here.

    python benchmarks/precision_accuracy.py --json benchmarks/results/precision_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from mmexport.precision.stages import CalibrationConfig

MODELS = ("fusion", "seed")
DEFAULT_METHOD = str(CalibrationConfig().method)  # what `mmexport calibrate` uses without --method


def mmexport(*args: str) -> str:
    done = subprocess.run(["mmexport", *args], check=True, capture_output=True, text=True)
    return done.stdout


def evaluate(model: str, folder: Path, method: str | None, samples: int, eval_samples: int) -> dict:
    fp32 = folder / f"{model}.onnx"
    mmexport("to-onnx", model, "-o", str(fp32), "-q")
    mmexport("fp16", str(fp32), "-q", "--eval-samples", "50")
    calibrate = ["calibrate", str(fp32), "-q", "--samples", str(samples)]
    if method is not None:  # else calibrate's own default, as a user gets it
        calibrate += ["--method", method]
    mmexport(*calibrate, "--eval-samples", "50", "--no-sensitivity")
    variants = [str(fp32), str(folder / f"{model}.fp16.onnx"), str(folder / f"{model}.int8.onnx")]
    return json.loads(mmexport("accuracy", *variants, "--samples", str(eval_samples), "--json", "-q"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the reports here")
    parser.add_argument("--method", help=f"calibration method (default: calibrate's own, {DEFAULT_METHOD})")
    parser.add_argument("--samples", type=int, default=512, help="calibration samples")
    parser.add_argument("--eval-samples", type=int, default=2000)
    args = parser.parse_args()
    method = args.method or DEFAULT_METHOD
    reports = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in MODELS:
            reports[model] = evaluate(model, Path(tmp), args.method, args.samples, args.eval_samples)
    print(
        f"Held-out synthetic split, {args.eval_samples} samples; "
        f"INT8: {method}, {args.samples} calibration samples\n"
    )
    print("| model | FP32 | FP16 | INT8 | INT8 drop (points) | INT8 top-1 agreement with FP32 |")
    print("|---|---|---|---|---|---|")
    for model, report in reports.items():
        fp32, fp16, int8 = report["variants"]
        agreement = int8["outputs"][0]["top1"]
        print(
            f"| {model} | {100 * fp32['accuracy']:.2f}% | {100 * fp16['accuracy']:.2f}% "
            f"| {100 * int8['accuracy']:.2f}% | {int8['drop_points']:.2f} | {100 * agreement:.2f}% |"
        )
    if args.json:
        recorded = vars(args) | {"json": str(args.json), "method": method}
        args.json.write_text(json.dumps({"args": recorded, "reports": reports}, indent=2) + "\n")


if __name__ == "__main__":
    main()
