"""The lines under ``bench``'s table that say why a variant is slower than FP32 on the CUDA EP."""

from __future__ import annotations

import numpy as np

from mmexport.bench import BenchConfig, BenchReport
from mmexport.bench.advice import precision_advice
from mmexport.bench.report import CaseResult, TargetInfo
from mmexport.bench.stats import LatencyStats

CUDA = {"backend": "onnxrt", "provider": "CUDAExecutionProvider", "device": "cuda:0"}


def fabricated(p50: dict[str, float], provider: str = "CUDAExecutionProvider", batch: int = 1) -> BenchReport:
    precisions = {"m.onnx": "fp32", "m.fp16.onnx": "fp16", "m.int8.onnx": "int8"}
    targets = [
        TargetInfo(label, label, 0.1, {**CUDA, "provider": provider, "precision": precisions[label]})
        for label in p50
    ]
    results = [
        CaseResult(
            target=label,
            case="opt",
            shapes={"image": [batch, 3, 8, 8]},
            batch=batch,
            first_call_ms=1.0,
            first_call_after="load",
            warmup_calls=3,
            stats=LatencyStats.from_ms(np.full(10, ms)),
            samples_ms=np.full(10, ms),
        )
        for label, ms in p50.items()
    ]
    return BenchReport(targets, ["opt"], results, {"host": {}, "libraries": {}}, BenchConfig())


def test_slower_int8_and_fp16_on_cuda_say_why_and_what_is_faster():
    report = fabricated({"m.onnx": 1.0, "m.fp16.onnx": 1.1, "m.int8.onnx": 1.5})
    lines = precision_advice(report)
    assert lines[0] == "Slower than FP32 on the CUDA execution provider:"
    fp16, int8 = lines[1], lines[2]
    assert fp16.startswith("  [opt] m.fp16.onnx (FP16) is 1.10x slower than m.onnx (FP32) at batch 1:")
    assert "casts" in fp16 and "larger batch" in fp16 and "TensorRT" in fp16
    assert int8.startswith("  [opt] m.int8.onnx (INT8) is 1.50x slower than m.onnx (FP32) at batch 1:")
    assert "dequantized" in int8 and "--provider tensorrt" in int8
    text = report.to_text()
    assert "\n\nSlower than FP32 on the CUDA execution provider:\n  [opt] m.fp16.onnx" in text


def test_no_advice_where_variants_are_faster_or_not_on_the_cuda_ep():
    assert precision_advice(fabricated({"m.onnx": 1.0, "m.fp16.onnx": 0.8, "m.int8.onnx": 0.6})) == []
    assert (
        precision_advice(fabricated({"m.onnx": 1.0, "m.int8.onnx": 1.5}, provider="CPUExecutionProvider"))
        == []
    )
    assert precision_advice(fabricated({"m.fp16.onnx": 1.0, "m.int8.onnx": 1.5})) == []  # no FP32 to compare
    assert "Slower than FP32" not in fabricated({"m.onnx": 1.0, "m.int8.onnx": 0.5}).to_text()
