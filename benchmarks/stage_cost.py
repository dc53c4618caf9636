"""What the precision stages cost with their defaults, against bare onnxruntime on the same samples.

A ~100M-parameter multimodal model is built in code (a conv image branch and a transformer text
branch, fused by concatenation; no downloads), exported once with ``mmexport to-onnx`` into a
temporary folder, then each stage runs with its defaults in a process of its own (peak RSS is per
process): ``fp16``, ``calibrate`` (minmax and entropy) and ``accuracy``. The baseline runs the
same samples once through the FP32 model with bare onnxruntime (default session options),
session creation included, the median of three processes; the run-only ratio is printed too.

Goals: wall time <= 2x the baseline for calibrate and accuracy, <= 3x for fp16 (conversion and
check); peak RSS <= 3x the FP32 file's size.

    python benchmarks/stage_cost.py --json benchmarks/results/stage_cost.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOALS = {"fp16": 3.0, "calibrate-minmax": 2.0, "calibrate-entropy": 2.0, "accuracy": 2.0}
RSS_GOAL = 3.0  # x the FP32 file size
SPEC = {
    "inputs": [
        {"name": "image", "modality": "image", "dtype": "float32", "shape": ["batch", 3, "height", "width"]},
        {
            "name": "tokens",
            "modality": "text",
            "dtype": "int64",
            "shape": ["batch", "seq"],
            "range": [0, 16000],
        },
    ],
    "outputs": [{"name": "logits"}],
    "dims": {
        "batch": {"min": 1, "opt": 4, "max": 8},
        "height": {"min": 32, "opt": 64, "max": 96},
        "width": {"min": 32, "opt": 64, "max": 96},
        "seq": {"min": 8, "opt": 32, "max": 64},
    },
}


def build() -> Any:
    """The ~100M-parameter model (random weights, seeded): image CNN + text transformer + head."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            chans = [3, 64, 128, 256, 512, 1024]
            layers: list[nn.Module] = []
            for cin, cout in itertools.pairwise(chans):
                layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
            layers += [nn.Conv2d(1024, 1024, 3, padding=1), nn.ReLU(), nn.Conv2d(1024, 1024, 3, padding=1)]
            self.image = nn.Sequential(*layers)
            self.embed = nn.Embedding(16000, 768)
            layer = nn.TransformerEncoderLayer(768, 12, 3072, batch_first=True, dropout=0.0)
            self.text = nn.TransformerEncoder(layer, 8, enable_nested_tensor=False)
            self.head = nn.Sequential(nn.Linear(1024 + 768, 1024), nn.ReLU(), nn.Linear(1024, 100))

        def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
            img = self.image(image).mean(dim=(2, 3))
            txt = self.text(self.embed(tokens)).mean(dim=1)
            return self.head(torch.cat([img, txt], dim=1))

    return Model().eval()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(stage: str, folder: Path) -> dict[str, Any]:
    """One stage with its defaults (or the baseline), timed from after the imports."""
    import logging

    logging.basicConfig(level=logging.INFO, format="    %(message)s", stream=sys.stderr)
    model = folder / "model.onnx"
    if stage == "baseline":
        return baseline(model, int(os.environ["STAGE_COST_SAMPLES"]))
    from mmexport.precision.stages import CalibrationConfig, accuracy, calibrate, to_fp16

    t0 = time.perf_counter()
    samples: int
    if stage == "fp16":
        result = to_fp16(model, folder / "model.fp16.onnx")
        samples = result.check.samples if result.check else 0
    elif stage.startswith("calibrate-"):
        config = CalibrationConfig(method=stage.removeprefix("calibrate-"))
        cal = calibrate(model, folder / f"model.{stage}.onnx", config=config)
        samples = cal.samples + (cal.accuracy.samples if cal.accuracy else 0)
    else:
        samples = accuracy([model, folder / "model.fp16.onnx"]).samples
    return {"seconds": time.perf_counter() - t0, "samples": samples}


def baseline(model: Path, samples: int) -> dict[str, Any]:
    """Bare onnxruntime: ``samples`` random rows at the opt shape through the FP32 model, once."""
    import numpy as np
    import onnxruntime as ort

    dims = {n: d["opt"] for n, d in SPEC["dims"].items()}  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    loaded = time.perf_counter()
    done = 0
    while done < samples:
        rows = min(dims["batch"], samples - done)
        feed = {
            "image": rng.standard_normal((rows, 3, dims["height"], dims["width"]), dtype=np.float32),
            "tokens": rng.integers(0, 16000, (rows, dims["seq"]), dtype=np.int64),
        }
        session.run(None, feed)
        done += rows
    end = time.perf_counter()
    return {"seconds": end - t0, "run_seconds": end - loaded, "samples": done}


def run_child(stage: str, folder: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", stage, str(folder)]
    done = subprocess.run(
        cmd, check=True, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def export(folder: Path) -> dict[str, Any]:
    spec = folder / "spec.json"
    spec.write_text(json.dumps(SPEC))
    t0 = time.perf_counter()
    cmd = ["mmexport", "to-onnx", f"{Path(__file__).resolve()}:build", "--spec", str(spec)]
    subprocess.run([*cmd, "-o", str(folder / "model.onnx")], check=True)
    return {"seconds": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--folder",
        type=Path,
        help="work here, keeping the exported model (reused when there), not in a temporary folder",
    )
    parser.add_argument(
        "--stages", nargs="+", choices=list(GOALS), default=list(GOALS), help="run only these stages"
    )
    parser.add_argument("--child", nargs=2, metavar=("STAGE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.child[0], Path(args.child[1]))
        print(json.dumps({**result, "peak_rss_mb": _peak_mb()}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        reused = (folder / "model.onnx").exists()
        exported = {"seconds": float("nan")} if reused else export(folder)
        size_mb = (folder / "model.onnx").stat().st_size / 1e6
        params = sum(p.numel() for p in build().parameters())
        took = exported["seconds"]
        print(f"model: {params / 1e6:.1f}M parameters, {size_mb:.0f} MB ONNX, to-onnx {took:.0f} s")
        rows = []
        for stage in args.stages:
            if stage == "accuracy" and not (folder / "model.fp16.onnx").exists():
                run_child("fp16", folder)  # accuracy compares FP32 with the FP16 variant
            print(f"{stage}:", flush=True)
            result = run_child(stage, folder)
            count = {"STAGE_COST_SAMPLES": str(result["samples"])}
            runs = [run_child("baseline", folder, count) for _ in range(3)]
            base = sorted(runs, key=lambda r: r["seconds"])[1]  # the median of three: the host is shared
            ratio = result["seconds"] / base["seconds"]
            rss_ratio = result["peak_rss_mb"] * 1.048576 / size_mb  # MiB -> MB
            rows.append(
                {
                    "stage": stage,
                    **result,
                    "baseline_seconds": base["seconds"],
                    "baseline_run_seconds": base["run_seconds"],
                    "baseline_peak_rss_mb": base["peak_rss_mb"],
                    "ratio": ratio,
                    "ratio_run_only": result["seconds"] / base["run_seconds"],
                    "rss_ratio": rss_ratio,
                    "meets_goal": ratio <= GOALS[stage] and rss_ratio <= RSS_GOAL,
                }
            )
    print(
        "\n| stage (defaults) | samples | wall s | bare onnxruntime s (run only) | ratio (run only) | goal "
        "| peak RSS MB | RSS / file |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['stage']} | {r['samples']} | {r['seconds']:.1f} | {r['baseline_seconds']:.1f} "
            f"({r['baseline_run_seconds']:.1f}) | {r['ratio']:.2f}x ({r['ratio_run_only']:.2f}x) "
            f"| <= {GOALS[r['stage']]:g}x | {r['peak_rss_mb']:.0f} | {r['rss_ratio']:.2f}x |"
        )
    result = {
        "model": {"parameters": params, "onnx_mb": size_mb, "to_onnx_seconds": exported["seconds"]},
        "goals": {"ratio": GOALS, "rss_vs_file": RSS_GOAL},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
