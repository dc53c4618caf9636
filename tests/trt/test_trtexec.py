"""trtexec cross-check lines per TensorRT generation, and GPU time in bench reports of engines."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mmexport.bench import BenchConfig, BenchTarget, benchmark
from mmexport.cli.app import cli
from mmexport.trt.trtexec import Behaviour, behaviour_flags, generations_for, trtexec_command

from .engines import SPEC, write_engine

FAST = BenchConfig(warmup_s=0.01, duration_s=0.05, min_iterations=5)
SHAPES = {"image": (2, 3, 4), "tokens": (2, 4)}


def test_tensorrt_10_gets_the_flags_that_are_11s_defaults():
    line = trtexec_command("m.engine", SPEC, SHAPES, 10, warmup_s=0.2, duration_s=2.5, iterations=10)
    assert line == (
        "trtexec --loadEngine=m.engine --shapes=image:2x3x4,tokens:2x4 --warmUp=200 --duration=3 "
        "--iterations=10 --useCudaGraph --useSpinWait --noDataTransfers"
    )
    assert trtexec_command("m.engine", SPEC, SHAPES, 11).endswith("--iterations=10")


def test_the_other_behaviour_spelled_for_each_generation():
    like_10 = Behaviour(cuda_graph=False, spin_wait=False, data_transfers=True)
    assert behaviour_flags(10, like_10) == []
    assert behaviour_flags(11, like_10) == ["--noCudaGraph", "--noSpinWait", "--includeDataTransfers"]


def test_onnx_lines_carry_the_spec_profile():
    line = trtexec_command("model.onnx", SPEC, SHAPES, 11)
    assert "--onnx=model.onnx" in line
    assert "--minShapes=image:1x3x4,tokens:1x2" in line
    assert "--optShapes=image:2x3x4,tokens:2x4" in line
    assert "--maxShapes=image:8x3x4,tokens:8x16" in line


def test_onnx_lines_on_tensorrt_10_build_strongly_typed_as_mmexport_does():
    """trtexec 10 builds weakly typed by default: an FP16 or Q/DQ ONNX would not be built as ours."""
    line = trtexec_command("model.fp16.onnx", SPEC, SHAPES, 10)
    assert line.startswith("trtexec --onnx=model.fp16.onnx --stronglyTyped ")
    assert "--stronglyTyped" not in trtexec_command("model.fp16.onnx", SPEC, SHAPES, 11)  # always strong
    assert "--stronglyTyped" not in trtexec_command("m.engine", SPEC, SHAPES, 10)  # typed at build time


def test_generation_from_the_engine_else_the_installed_else_both():
    assert generations_for({"tensorrt_version": "10.3.0"}, "11.4.0") == [10]
    assert generations_for({}, "11.4.0.106") == [11]
    assert generations_for({}, None) == [10, 11]


def test_bench_report_has_gpu_time_and_the_trtexec_line(tmp_path, fake_trt, fake_cuda):
    path = write_engine(tmp_path, fake_trt)
    report = benchmark([BenchTarget(path, options={"cuda_graph": True})], config=FAST)
    result = report.results[0]
    assert result.gpu_ms is not None and set(result.gpu_ms) == {"gpu", "h2d", "compute", "d2h"}
    assert result.gpu_ms["compute"].count == result.stats.count
    generation = int(fake_trt.__version__.split(".")[0])
    assert result.trtexec == [
        trtexec_command(path, SPEC, {"image": (2, 3, 4), "tokens": (2, 4)}, generation,
                        warmup_s=0.01, duration_s=0.05, iterations=5)
    ]  # fmt: skip
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data["results"][0]["gpu_ms"]["compute"]) >= {"p50", "p99", "count"}
    text = report.to_text()
    assert "GPU time, CUDA events" in text and f"--loadEngine={path}" in text
    assert report.targets[0].backend["cuda_graph"] is True


def test_bench_cli_on_an_engine(tmp_path, fake_trt, fake_cuda):
    path = write_engine(tmp_path, fake_trt)
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        cli,
        ["bench", str(path), "--duration", "0.05", "--warmup", "0", "--cuda-graph", "-q", "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "Cross-check with trtexec" in result.output
    assert json.loads(out.read_text())["targets"][0]["backend"]["cuda_graph"] is True


@pytest.mark.parametrize("generation", [10, 11])
def test_lines_are_shell_quoted(generation):
    line = trtexec_command("my model.engine", SPEC, SHAPES, generation)
    assert "'--loadEngine=my model.engine'" in line


def test_engine_for_a_dla_core_is_measured_on_that_core():
    """An engine runs on the DLA core trtexec selects (0 unless told): the line must name it."""
    line = trtexec_command("m.engine", SPEC, SHAPES, 10, dla_core=1)
    assert "--useDLACore=1" in line and "--allowGPUFallback" not in line
    onnx_line = trtexec_command("model.onnx", SPEC, SHAPES, 10, dla_core=0)
    assert "--useDLACore=0" in onnx_line and "--allowGPUFallback" in onnx_line
    assert "DLA" not in trtexec_command("m.engine", SPEC, SHAPES, 10)


def test_bench_of_a_dla_engine_writes_its_core(tmp_path, fake_trt, fake_cuda):
    fake_trt.fake.dla_cores = 2
    path = write_engine(tmp_path, fake_trt, dla_core=1)
    report = benchmark([BenchTarget(path)], config=FAST)
    assert all("--useDLACore=1" in line for line in report.results[0].trtexec)
