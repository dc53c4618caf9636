"""How the precision stages read, convert and evaluate a big model, against the ways they do not.

On the stage-cost model (96.1M parameters, 385 MB ONNX, built in code; ``benchmarks/stage_cost.py``):

1. reading the FP32 file: ``onnx.load`` vs ``read_mapped`` (graph in memory, weights left in the file)
2. FP16 weights: onnxruntime's ``convert_np_to_float16`` vs ``to_float16`` over every float weight
   (the same bits, checked)
3. 32 random samples at the opt shape (batch 4) through onnxruntime's CPU provider: FP32 and FP16
   as written, the INT8 Q/DQ model (``calibrate``'s defaults) as written, with its weights'
   DequantizeLinear folded at load (how the evaluation runs it), and through onnxruntime's QDQ
   fusions (extended optimizations: integer kernels); run seconds, and INT8's max |diff| to as written

and, on ``benchmarks/int8_third_party.py``'s tiny CLIP and conv + transformer models (calibrate's
defaults, 32 random samples from the spec): the worst per-sample cosine of the INT8 outputs to
FP32 evaluated folded vs through the QDQ fusions.

    python benchmarks/evaluation_paths.py --json benchmarks/results/evaluation_paths.json
    python benchmarks/evaluation_paths.py --folder /tmp/sc     # reuses stage_cost.py's export there
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPEAT = 3
SAMPLES = 32


def median_seconds(work: Callable[[], Any]) -> float:
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def session(path: Path, how: str) -> Any:
    """An onnxruntime CPU session: ``written`` (no optimizations), ``folded`` (mmexport's INT8
    evaluation: basic level with the QDQ fusions off), ``fused`` (extended level)."""
    import onnxruntime as ort

    from mmexport.runtime.backends.onnxrt.loader import NO_QDQ_FUSIONS_KEY

    options = ort.SessionOptions()
    levels = {
        "written": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "folded": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "fused": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }
    options.graph_optimization_level = levels[how]
    if how == "folded":
        options.add_session_config_entry(NO_QDQ_FUSIONS_KEY, "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def reading(path: Path) -> dict[str, float]:
    import onnx

    from mmexport.core.onnx_mapped import read_mapped

    return {
        "onnx_load_s": median_seconds(lambda: onnx.load(str(path))),
        "read_mapped_s": median_seconds(lambda: read_mapped(path)),
    }


def fp16_weights(path: Path) -> dict[str, float]:
    import onnx
    from onnx import numpy_helper
    from onnxruntime.transformers import float16

    from mmexport.precision.fp16 import to_float16

    model = onnx.load(str(path))
    weights = [
        numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT
    ]
    del model
    for w in weights:  # the same bits, or the timing means nothing
        assert np.array_equal(to_float16(w).view(np.uint16), float16.convert_np_to_float16(w).view(np.uint16))
    return {
        "weights": sum(w.size for w in weights),
        "onnxruntime_convert_np_to_float16_s": median_seconds(
            lambda: [float16.convert_np_to_float16(w) for w in weights]
        ),
        "to_float16_s": median_seconds(lambda: [to_float16(w) for w in weights]),
    }


def runs(folder: Path) -> dict[str, Any]:
    from stage_cost import SPEC

    from mmexport.core.spec import ModelSpec

    spec = ModelSpec.from_dict(SPEC)
    opt = spec.point("opt")
    batch = int(SPEC["dims"]["batch"]["opt"])  # type: ignore[index]
    feeds = [spec.sample_feed(opt, seed=i) for i in range(SAMPLES // batch)]
    rows: dict[str, Any] = {}
    outputs: dict[str, np.ndarray] = {}
    cases = [
        ("fp32 written", folder / "model.onnx", "written"),
        ("fp16 written", folder / "model.fp16.onnx", "written"),
        ("int8 written", folder / "model.int8.onnx", "written"),
        ("int8 folded", folder / "model.int8.onnx", "folded"),
        ("int8 fused", folder / "model.int8.onnx", "fused"),
    ]
    for name, path, how in cases:
        start = time.perf_counter()
        s = session(path, how)
        opened = time.perf_counter() - start

        def run_all(s: Any = s) -> list[np.ndarray]:
            return [s.run(None, feed)[0] for feed in feeds]

        outputs[name] = np.concatenate(run_all())
        rows[name] = {"session_s": opened, "runs_s": median_seconds(run_all)}
        del s
    for name in ("int8 folded", "int8 fused"):
        rows[name]["max_abs_diff_to_int8_written"] = float(
            np.abs(outputs[name] - outputs["int8 written"]).max()
        )
    return rows


def fusion_cosines(folder: Path) -> list[dict[str, Any]]:
    from int8_third_party import SPECS, build

    import mmexport
    from mmexport.core.spec import ModelSpec
    from mmexport.precision.accuracy import batch_sizes, output_axis, samples_first
    from mmexport.runtime.compare import compare_arrays

    rows = []
    for name in ("clip", "conv_transformer"):
        spec = ModelSpec.from_dict(SPECS[name])
        fp32 = mmexport.to_onnx(build(name), folder / f"{name}.onnx", spec=spec).path
        int8 = mmexport.calibrate(fp32, folder / f"{name}.int8.onnx").path
        sessions = {how: session(p, how) for how, p in (("written", fp32), ("folded", int8), ("fused", int8))}
        graph_inputs = {i.name for i in sessions["written"].get_inputs()}
        names = [o.name for o in sessions["written"].get_outputs()]
        worst: dict[str, dict[str, float]] = {"folded": {}, "fused": {}}
        for seed in range(8):  # 8 batches at the opt shape, as the evaluation's random feeds
            feed = spec.sample_feed(spec.point("opt"), seed=100 + seed)
            given = {k: v for k, v in feed.items() if k in graph_inputs}
            ref = dict(zip(names, sessions["written"].run(names, given), strict=True))
            for how in ("folded", "fused"):
                got = dict(zip(names, sessions[how].run(names, given), strict=True))
                for out in names:
                    axis = output_axis(spec, out, ref[out].shape, batch_sizes(feed))
                    c = compare_arrays(samples_first(got[out], axis), samples_first(ref[out], axis))
                    worst[how][out] = min(worst[how].get(out, 1.0), float(c.sample_cosines.min()))
        rows.append({"model": name, "worst_cosine": worst})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--folder", type=Path, help="work here (stage_cost.py's export is reused when there)")
    args = parser.parse_args()
    from stage_cost import export

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "model.onnx").exists():
            export(folder)
        import mmexport

        for variant, make in (("fp16", mmexport.to_fp16), ("int8", mmexport.calibrate)):
            if not (folder / f"model.{variant}.onnx").exists():
                make(folder / "model.onnx", folder / f"model.{variant}.onnx")
        result = {
            "reading": reading(folder / "model.onnx"),
            "fp16_weights": fp16_weights(folder / "model.onnx"),
            "runs": runs(folder),
            "fusion_cosines": fusion_cosines(Path(tmp)),
        }
    r, w = result["reading"], result["fp16_weights"]
    mapped_ms = r["read_mapped_s"] * 1000
    print(f"reading the FP32 file: onnx.load {r['onnx_load_s']:.3f} s, read_mapped {mapped_ms:.1f} ms")
    print(
        f"FP16 weights ({w['weights'] / 1e6:.1f}M): convert_np_to_float16 "
        f"{w['onnxruntime_convert_np_to_float16_s']:.2f} s, to_float16 {w['to_float16_s']:.2f} s (same bits)"
    )
    print(f"\n| {SAMPLES} samples (batch 4) | session s | runs s | max abs diff to INT8 as written |")
    print("|---|---:|---:|---:|")
    for name, row in result["runs"].items():
        diff = row.get("max_abs_diff_to_int8_written")
        shown = "-" if diff is None else f"{diff:.2g}"
        print(f"| {name} | {row['session_s']:.2f} | {row['runs_s']:.2f} | {shown} |")
    print("\n| model | worst cosine to FP32, INT8 folded | INT8 fused |")
    print("|---|---|---|")
    for row in result["fusion_cosines"]:
        folded, fused = row["worst_cosine"]["folded"], row["worst_cosine"]["fused"]
        print(
            f"| {row['model']} | {', '.join(f'{k} {v:.4f}' for k, v in folded.items())} "
            f"| {', '.join(f'{k} {v:.4f}' for k, v in fused.items())} |"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
