"""Why a lower-precision variant measured slower than FP32 on onnxruntime's CUDA provider, and what
would be faster: one line per such variant and case, shown under the benchmark table.

Measured on an H200 (docs/benchmarks.md): the CUDA execution provider runs a Q/DQ INT8 model
dequantized (0.61-0.71x the FP32 speed: the QuantizeLinear / DequantizeLinear nodes are extra
work, the matrix products stay FP32), and an FP16 model of this size 0.91x (the casts at its
FP32 inputs and outputs cost more than FP16 kernels save on small layers). TensorRT compiles Q/DQ
into INT8 kernels and fuses the casts away; larger batches give FP16 kernels work to save on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmexport.bench.report import BenchReport

CUDA_EP = "CUDAExecutionProvider"

WHY = {
    "int8": (
        "the CUDA execution provider runs Q/DQ INT8 dequantized (its QuantizeLinear/DequantizeLinear "
        "nodes are extra work; the matrix products stay FP32)",
        "TensorRT runs it as INT8 kernels: --provider tensorrt, or an engine (mmexport build)",
    ),
    "fp16": (
        "in a model this small, the casts at its FP32 inputs and outputs cost more than FP16 kernels save",
        "a larger batch gives FP16 kernels work to save on; TensorRT (--provider tensorrt, or "
        "mmexport build) fuses the casts away",
    ),
}


def precision_of(backend: dict[str, Any]) -> str | None:
    """``fp32``, ``fp16`` or ``int8`` from a target's ``describe()`` (``int8-qdq`` counts as int8)."""
    value = backend.get("precision")
    if value is None:
        return None
    text = str(value).lower()
    return "int8" if text.startswith("int8") else text


def on_cuda_ep(backend: dict[str, Any]) -> bool:
    return backend.get("provider") == CUDA_EP


def precision_advice(report: BenchReport) -> list[str]:
    """For each case: every FP16 / INT8 target on the CUDA provider whose p50 is above the FP32
    target's (the first FP32 one on the CUDA provider), why, and what would be faster."""
    targets = {t.label: t.backend for t in report.targets}
    fp32 = [t.label for t in report.targets if on_cuda_ep(t.backend) and precision_of(t.backend) == "fp32"]
    if not fp32:
        return []
    lines = []
    for case in report.cases:
        base = report.result(fp32[0], case)
        for r in report.results:
            backend = targets[r.target]
            kind = precision_of(backend)
            if r.case != case or kind not in WHY or not on_cuda_ep(backend) or r.stats.p50 <= base.stats.p50:
                continue
            why, faster = WHY[kind]
            lines.append(
                f"  [{case}] {r.target} ({kind.upper()}) is {r.stats.p50 / base.stats.p50:.2f}x slower than "
                f"{fp32[0]} (FP32) at batch {r.batch}: {why}. Faster: {faster}."
            )
    if lines:
        lines.insert(0, "Slower than FP32 on the CUDA execution provider:")
    return lines
