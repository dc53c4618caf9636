"""Why a lower-precision variant measured slower than FP32 on onnxruntime's CUDA provider, and what
would be faster: one line per such variant and case, shown under the benchmark table.

Measured on an H200 (docs/benchmarks.md): the CUDA execution provider runs a Q/DQ INT8 model
dequantized (0.61-0.71x the FP32 speed: the QuantizeLinear / DequantizeLinear nodes are extra
work, the matrix products stay FP32), and an FP16 model of this size 0.91x (the casts at its
FP32 inputs and outputs cost more than FP16 kernels save on small layers). TensorRT compiles Q/DQ
into INT8 kernels and fuses the casts away; larger batches give FP16 kernels work to save on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmexport.bench.report import BenchReport

CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"

DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
"""/proc/cpuinfo flags of 8-bit dot-product instructions, which onnxruntime's INT8 CPU kernels
use (docs/precision.md, "When INT8 is faster than FP32 on a CPU")."""

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


WHY_CPU = {
    "int8": (
        "the CPU execution provider runs Q/DQ INT8 with float fallbacks (ops without an INT8 kernel stay "
        "float between QuantizeLinear/DequantizeLinear pairs), and {cpu}, so each INT8 multiply-add goes "
        "through 16-bit intermediates and the quantize/dequantize steps cost more than they save",
        "on this CPU keep FP32; INT8 pays off as a TensorRT engine on the GPU (mmexport build), or on a CPU "
        "with VNNI/AMX/Arm dot-product and mmexport calibrate --layout onnxruntime",
    ),
    "fp16": (
        "the CPU execution provider has no FP16 kernel for most ops and runs them in FP32 behind casts "
        "(FP16 -> FP32 -> FP16 around each)",
        "on the CPU keep FP32; FP16 pays off on the GPU (TensorRT, or a larger batch on the CUDA provider)",
    ),
}


def dot_product_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str] | None:
    """Which of ``DOT_PRODUCT_FLAGS`` this CPU has (None: unknown, no /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, Arm
            flags.update(value.split())
    return [f for f in DOT_PRODUCT_FLAGS if f in flags]


def slower_reason(kind: str | None, provider: str | None, cpu_flags: list[str] | None = None) -> str | None:
    """Why an FP16 / INT8 variant on ``provider`` measured slower than FP32, and what would be
    faster (one sentence; None for other precisions and providers). ``cpu_flags``: the CPU's
    dot-product flags (``dot_product_flags()``), which the INT8 reason on the CPU names."""
    if kind not in WHY:
        return None
    if provider == CUDA_EP:
        why, faster = WHY[kind]
    elif provider == CPU_EP:
        if cpu_flags is None:
            cpu = "unless the CPU has VNNI, AMX or Arm dot-product instructions the INT8 kernels are slow"
        elif cpu_flags:
            cpu = (
                f"although this CPU has {', '.join(cpu_flags)}, a model this small leaves little "
                "arithmetic to save"
            )
        else:
            cpu = "this CPU has no VNNI, AMX or Arm dot-product instructions (8-bit dot products)"
        why, faster = WHY_CPU[kind]
        why = why.format(cpu=cpu)
        if kind == "int8" and cpu_flags:
            why = why.split(", so each")[0]
    else:
        return None
    return f"{why}. Faster: {faster}."


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
