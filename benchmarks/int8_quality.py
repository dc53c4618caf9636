"""INT8 from mmexport against onnxruntime's quantize_static: accuracy, agreement, calibration cost,
latency, on the built-in models at two calibration sizes.

Every tool calibrates on the same fixed-shape batches of the synthetic calibration split (batch 8,
128x128 images, 13 tokens, 101 audio frames: onnxruntime's entropy calibrator cannot take batches
whose shapes change). Each calibration runs in its own process, so its peak RSS is its own; the
figure is the peak above the process's RSS before calibrating. Accuracy is measured on the
held-out labelled split, all variants in one pass; latency is onnxruntime CPU, one thread, batch 8,
the median of interleaved rounds, as a ratio to FP32; calibration seconds and RSS are the median
of three processes. NVIDIA ModelOpt runs only when
``modelopt.onnx.quantization`` is importable (it is not a dependency of mmexport).

    python benchmarks/int8_quality.py --json benchmarks/results/int8_quality.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODELS = ("fusion", "seed")
SIZES = (64, 512)
BATCH = 8
TOOLS = {
    "mmexport": "mmexport calibrate (defaults: minmax, TensorRT layout)",
    "mmexport-ort": "mmexport calibrate --layout onnxruntime",
    "mmexport-entropy": "mmexport calibrate --method entropy",
    "ort-same": "onnxruntime quantize_static, the same nodes, symmetric INT8, per-channel, minmax",
    "ort-default": "onnxruntime quantize_static defaults (every supported op)",
    "modelopt": "NVIDIA ModelOpt onnx quantize, int8, entropy",
}
LATENCY_TOOLS = ("mmexport", "mmexport-ort", "ort-same")


def calibration_batches(model: str, samples: int) -> list[dict[str, Any]]:
    from mmexport.data.sources import CALIBRATION_SEED
    from mmexport.data.synthetic import SyntheticTask

    audio = model == "fusion"
    task = SyntheticTask(with_audio=audio, seed=CALIBRATION_SEED)
    extra = {"frames": 101} if audio else {}
    return [task.batch(BATCH, height=128, width=128, seq=13, **extra)[0] for _ in range(samples // BATCH)]


def status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, in MB. Not ru_maxrss: Linux carries the
    parent's peak over fork and exec, so a child of a process holding torch would report it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(tool: str, model: str, fp32: str, samples: int, output: str) -> None:
    """One calibration in this process; prints seconds and peak RSS growth (MB) as JSON."""
    import onnx
    import onnxruntime  # noqa: F401  (imported before timing by every tool alike)

    batches = calibration_batches(model, samples)
    if tool.startswith("mmexport"):
        from mmexport.precision.stages import CalibrationConfig, calibrate

        method = "entropy" if tool == "mmexport-entropy" else "minmax"
        layout = "onnxruntime" if tool == "mmexport-ort" else "tensorrt"
        config = CalibrationConfig(
            method=method, samples=samples, batch_size=BATCH, sensitivity=False, layout=layout
        )
        run = lambda: calibrate(fp32, output, data=batches, config=config, eval_samples=0)  # noqa: E731
    elif tool == "modelopt":
        import numpy as np
        from modelopt.onnx.quantization import quantize  # type: ignore[import-not-found]

        names = list(batches[0])
        data = {n: np.concatenate([b[n] for b in batches]) for n in names}
        run = lambda: quantize(fp32, quantize_mode="int8", calibration_data=data, output_path=output)  # noqa: E731
    else:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        from mmexport.precision.qdq import quantizable_nodes

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.rest = iter(batches)

            def get_next(self) -> dict[str, Any] | None:
                return next(self.rest, None)

        options: dict[str, Any] = {}
        if tool == "ort-same":
            nodes = [n.name for n in quantizable_nodes(onnx.load(fp32))]
            options = {
                "nodes_to_quantize": nodes,
                "op_types_to_quantize": ["Conv", "Gemm", "MatMul"],
                "per_channel": True,
                "activation_type": QuantType.QInt8,
                "weight_type": QuantType.QInt8,
                "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True},
            }
        run = lambda: quantize_static(fp32, output, Reader(), quant_format=QuantFormat.QDQ, **options)  # noqa: E731
    before = status_mb("VmRSS")
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mb": max(status_mb("VmHWM") - before, 0.0)}))


def modelopt_available() -> bool:
    try:
        import modelopt.onnx.quantization  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def calibrate_in_child(
    tool: str, model: str, fp32: Path, samples: int, output: Path, repeat: int
) -> dict[str, float]:
    """The median seconds and peak RSS of ``repeat`` calibrations, each in a fresh process."""
    command = [sys.executable, __file__, "--child", tool, model, str(fp32), str(samples), str(output)]
    runs = []
    for _ in range(repeat):
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def accuracy(fp32: Path, variants: dict[str, Path], eval_samples: int) -> dict[str, dict[str, Any]]:
    from mmexport.precision.accuracy import evaluate
    from mmexport.precision.common import load_source_model, open_data

    source = load_source_model(fp32)
    held_out = open_data(None, source, split="evaluation", samples=eval_samples, batch_size=50)
    rows = [("fp32", "fp32", source.model)] + [(tool, "int8", str(path)) for tool, path in variants.items()]
    report = evaluate(rows, held_out.batches(), source.spec, source=held_out.description)
    out = {}
    for variant in report.variants:
        first = variant.outputs[0] if variant.outputs else None
        out[variant.name] = {
            "accuracy": variant.accuracy,
            "drop_points": report.drop(variant),
            "top1_agreement": first.top1 if first else 1.0,
            "min_cosine": first.cosine_min if first else 1.0,
        }
    return out


def latencies(models: dict[str, Path], feed: dict[str, Any], rounds: int, runs: int) -> dict[str, float]:
    """Median ms per run of each model; rounds interleave the models so that load drifts hit all."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sessions = {
        name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for name, path in models.items()
    }
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():
        for _ in range(3):
            session.run(None, feed)
    for _ in range(rounds):
        for name, session in sessions.items():
            start = time.perf_counter()
            for _ in range(runs):
                session.run(None, feed)
            times[name].append((time.perf_counter() - start) / runs * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
    return [f for f in wanted if f in flags]


def measure(model: str, folder: Path, args: argparse.Namespace, tools: list[str]) -> dict[str, Any]:
    from mmexport.export import to_onnx

    fp32 = folder / f"{model}.onnx"
    if not fp32.exists():
        to_onnx(model, fp32)
    results: dict[str, Any] = {}
    for samples in args.sizes:
        paths = {tool: folder / f"{model}.{tool}.{samples}.onnx" for tool in tools}
        cost = {t: calibrate_in_child(t, model, fp32, samples, paths[t], args.repeat) for t in tools}
        quality = accuracy(fp32, paths, args.eval_samples)
        feed = calibration_batches(model, BATCH)[0]
        timed = {"fp32": fp32} | {t: paths[t] for t in LATENCY_TOOLS if t in paths}
        ms = latencies(timed, feed, args.rounds, args.runs)
        results[str(samples)] = {
            "fp32": quality["fp32"],
            "latency_ms": ms,
            "tools": {
                tool: quality[tool]
                | cost[tool]
                | {"latency_vs_fp32": ms[tool] / ms["fp32"] if tool in ms else None}
                for tool in tools
            },
        }
    return results


def render(results: dict[str, Any], tools: list[str]) -> str:
    lines = [
        "| model | samples | INT8 by | accuracy (FP32) | drop | top-1 agreement | min cosine "
        "| calibration s | peak RSS MB | INT8/FP32 latency |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, sizes in results.items():
        for samples, row in sizes.items():
            for tool in tools:
                t = row["tools"][tool]
                ratio = "-" if t["latency_vs_fp32"] is None else f"{t['latency_vs_fp32']:.2f}x"
                lines.append(
                    f"| {model} | {samples} | {tool} | {100 * t['accuracy']:.2f}% "
                    f"({100 * row['fp32']['accuracy']:.2f}%) "
                    f"| {t['drop_points']:.2f} | {100 * t['top1_agreement']:.2f}% | {t['min_cosine']:.4f} "
                    f"| {t['seconds']:.2f} | {t['peak_rss_mb']:.0f} | {ratio} |"
                )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        tool, model, fp32, samples, output = sys.argv[2:7]
        child(tool, model, fp32, int(samples), output)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="calibration samples")
    parser.add_argument("--eval-samples", type=int, default=2000, help="held-out samples")
    parser.add_argument("--repeat", type=int, default=3, help="calibrations per tool (median)")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved latency rounds")
    parser.add_argument("--runs", type=int, default=5, help="runs per latency round")
    args = parser.parse_args()
    tools = [t for t in TOOLS if t != "modelopt" or modelopt_available()]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            results[model] = measure(model, Path(tmp), args, tools)
    flags = cpu_flags()
    print(render(results, tools))
    print()
    for tool in tools:
        print(f"- {tool}: {TOOLS[tool]}")
    if "modelopt" not in tools:
        print("- NVIDIA ModelOpt: not measured, modelopt is not installed here")
    print(f"- CPU: {platform.processor() or platform.machine()}, INT8 flags: {', '.join(flags) or 'none'}")
    for model, sizes in results.items():
        for samples, row in sizes.items():
            ours, theirs = row["tools"]["mmexport-ort"], row["tools"]["ort-same"]
            print(
                f"- {model} {samples}: mmexport --layout onnxruntime / onnxruntime same ops: latency "
                f"{row['latency_ms']['mmexport-ort'] / row['latency_ms']['ort-same']:.2f}x, "
                f"calibration time {ours['seconds'] / theirs['seconds']:.2f}x"
            )
    if args.json:
        payload = {
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "cpu_flags": flags,
            "cpu_count": os.cpu_count(),
            "tools": {t: TOOLS[t] for t in tools},
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
