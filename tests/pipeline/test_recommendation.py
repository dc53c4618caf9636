"""The pipeline's recommendation: the fastest variant within the accuracy gates, and why an FP16 /
INT8 variant slower than FP32 is slower (on fabricated rows, and once on a real tiny run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mmexport.bench.advice import dot_product_flags, slower_reason
from mmexport.pipeline.report import recommend, recommendation_lines

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
CASE = "opt batch 4"
GATES: dict[str, float | None] = {"max_accuracy_drop": 1.0, "min_cosine": None}


def row(
    name: str,
    precision: str,
    p50: float,
    drop: float | None = 0.0,
    cosine: float | None = 0.999,
    provider: str = CPU,
) -> dict[str, Any]:
    return {
        "variant": name,
        "precision": precision,
        "drop_points": drop,
        "min_cosine": None if precision == "fp32" else cosine,
        "provider": provider,
        "latency": {CASE: {"batch": 4, "p50_ms": p50, "p90_ms": p50 * 1.2, "samples_per_s": 4000 / p50}},
    }


def test_the_fastest_variant_within_the_gates_is_recommended() -> None:
    rows = [
        row("model.onnx", "fp32", 1.0),
        row("model.fp16.onnx", "fp16", 0.8, drop=0.25),
        row("model.int8.onnx", "int8", 0.5, drop=2.0),  # fastest, but loses 2 points
    ]
    rec = recommend(rows, CASE, GATES)
    assert rec is not None and rec["variant"] == "model.fp16.onnx"
    assert rec["why"].startswith(
        "fastest p50 at batch 4 (opt batch 4, 0.800 ms) among variants within the gates"
    )
    assert rec["excluded"] == {"model.int8.onnx": ["drop 2.00 > 1 points"]}
    lines = recommendation_lines(rec)
    assert lines[0].startswith("Recommended: model.fp16.onnx (why: fastest p50 at batch 4")
    assert lines[1] == "- model.int8.onnx: outside the gates (drop 2.00 > 1 points)."
    # a looser gate lets INT8 win
    assert (
        recommend(rows, CASE, {"max_accuracy_drop": 3.0, "min_cosine": None})["variant"] == "model.int8.onnx"
    )  # type: ignore[index]


def test_cosine_gate_and_unmeasured_drop() -> None:
    rows = [row("model.onnx", "fp32", 1.0), row("model.int8.onnx", "int8", 0.5, drop=0.0, cosine=0.95)]
    rec = recommend(rows, CASE, {"max_accuracy_drop": 1.0, "min_cosine": 0.98})
    assert rec is not None and rec["variant"] == "model.onnx"
    assert rec["excluded"] == {"model.int8.onnx": ["min cosine 0.95000 < 0.98"]}
    # no labels and no classifier output: no drop, so agreement (cosine 0.99) gates instead
    unmeasured = [
        row("model.onnx", "fp32", 1.0, drop=None),
        row("model.int8.onnx", "int8", 0.5, drop=None, cosine=0.95),
    ]
    assert recommend(unmeasured, CASE, GATES)["variant"] == "model.onnx"  # type: ignore[index]


def test_slower_than_fp32_on_the_cpu_says_why() -> None:
    rows = [
        row("model.onnx", "fp32", 1.0),
        row("model.fp16.onnx", "fp16", 1.2),
        row("model.int8.onnx", "int8-qdq", 1.6),
        row("model.int8.engine", "TensorRT int8", 0.1, provider="tensorrt"),  # not compared to the CPU
    ]
    rec = recommend(rows, CASE, GATES, cpu_flags=[])
    assert rec is not None and rec["variant"] == "model.int8.engine"
    slower = rec["slower_than_fp32"]
    assert set(slower) == {"model.fp16.onnx", "model.int8.onnx"}
    assert slower["model.int8.onnx"].startswith(
        "1.60x slower than model.onnx at batch 4: the CPU execution provider"
    )
    assert (
        "float fallbacks" in slower["model.int8.onnx"]
        and "no VNNI, AMX or Arm dot-product" in slower["model.int8.onnx"]
    )
    assert "FP32 behind casts" in slower["model.fp16.onnx"]
    with_vnni = recommend(rows, CASE, GATES, cpu_flags=["avx512_vnni"])
    assert with_vnni is not None
    assert "although this CPU has avx512_vnni" in with_vnni["slower_than_fp32"]["model.int8.onnx"]
    assert "16-bit intermediates" not in with_vnni["slower_than_fp32"]["model.int8.onnx"]
    # a variant faster than FP32 gets no such line
    faster = recommend([row("model.onnx", "fp32", 1.0), row("model.int8.onnx", "int8", 0.9)], CASE, GATES)
    assert faster is not None and faster["slower_than_fp32"] == {}


def test_slower_on_the_cuda_provider_reuses_the_cuda_advice() -> None:
    rows = [row("model.onnx", "fp32", 1.0, provider=CUDA), row("model.int8.onnx", "int8", 1.5, provider=CUDA)]
    rec = recommend(rows, CASE, GATES)
    assert rec is not None and "runs Q/DQ INT8 dequantized" in rec["slower_than_fp32"]["model.int8.onnx"]
    assert slower_reason("fp32", CPU) is None and slower_reason("int8", "tensorrt") is None


def test_dot_product_flags_from_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text(
        "processor\t: 0\nflags\t\t: fpu sse avx2 avx512_vnni amx_int8\n\nprocessor\t: 1\nflags\t: avx2\n"
    )
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
    old = tmp_path / "old"
    old.write_text("flags\t: fpu sse avx2 fma\n")
    assert dot_product_flags(x86) == ["avx512_vnni", "amx_int8"]
    assert dot_product_flags(arm) == ["asimddp"]
    assert dot_product_flags(old) == []
    assert dot_product_flags(tmp_path / "missing") is None


@pytest.mark.slow
def test_a_real_run_recommends_a_variant(tmp_path: Path) -> None:
    from pipeline.test_pipeline import _pipeline

    folder = tmp_path / "report"
    result = _pipeline(folder, "--max-accuracy-drop", "100", "-q")
    assert result.exit_code == 0, result.output
    written = json.loads((folder / "report.json").read_text())
    rec = written["recommendation"]
    rows = {r["variant"]: r for r in written["variants"]}
    assert rec["case"] == "opt batch 2" and rec["batch"] == 2
    fastest = min(rows.values(), key=lambda r: r["latency"]["opt batch 2"]["p50_ms"])
    assert rec["variant"] == fastest["variant"]  # every variant is within a 100-point gate
    assert written["gates"] == {"max_accuracy_drop": 100.0, "min_cosine": None}
    assert all(r["provider"] == CPU for r in rows.values())
    report = (folder / "report.md").read_text()
    assert f"Recommended: {rec['variant']} (why: fastest p50 at batch 2 (opt batch 2" in report
    assert f"Recommended: {rec['variant']}" in result.stdout
    fp32 = rows["model.onnx"]["latency"]["opt batch 2"]["p50_ms"]
    for name in ("model.fp16.onnx", "model.int8.onnx"):
        slower = rows[name]["latency"]["opt batch 2"]["p50_ms"] > fp32
        assert (name in rec["slower_than_fp32"]) == slower
        if slower:
            assert f"- {name}: " in report and "CPU execution provider" in rec["slower_than_fp32"][name]
