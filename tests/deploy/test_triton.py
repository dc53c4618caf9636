"""``mmexport triton`` on the built-in models' FP32, FP16 and INT8 ONNX files.

Every config is parsed with Triton's own schema (``tritonclient``'s ``model_config_pb2``), both as
``config.pbtxt`` and as the JSON ``--json`` prints; the ONNX copied into the repository is run
with feeds shaped by that config and must give the original's outputs.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as pb

from mmexport.cli.app import cli
from mmexport.core.manifest import manifest_path
from mmexport.deploy.triton import triton_repository
from mmexport.deploy.triton_artifacts import read_artifacts
from mmexport.deploy.triton_model import TritonError, TritonOptions, make_model
from mmexport.export.stage import ToOnnxResult
from mmexport.models import get_builtin
from mmexport.precision.stages import CalibrationConfig, Fp16Config, calibrate, to_fp16

PRECISIONS = ("fp32", "fp16", "int8")
NUMPY = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_INT64": np.int64, "TYPE_INT32": np.int32}
# What Triton must be told about each built-in model (batch dim left out: max_batch_size is its max).
EXPECTED_IO = {
    "fusion": (
        {
            "image": ("TYPE_FP32", [3, -1, -1]),
            "tokens": ("TYPE_INT64", [-1]),
            "audio": ("TYPE_FP32", [64, -1]),
        },
        {"logits": ("TYPE_FP32", [9])},
    ),
    "seed": (
        {"image": ("TYPE_FP32", [3, -1, -1]), "tokens": ("TYPE_INT64", [-1])},
        {"probs": ("TYPE_FP32", [6])},
    ),
}


def make_variants(fp32: Path, folder: Path) -> dict[str, Path]:
    """A shared FP32 export (dynamo, the default exporter) and its FP16 / INT8 variants from two
    samples, written to ``folder``."""
    name = fp32.name.removesuffix(".onnx")
    fp16 = to_fp16(fp32, folder / f"{name}.fp16.onnx", config=Fp16Config(samples=2), eval_samples=0)
    int8 = calibrate(
        fp32,
        folder / f"{name}.int8.onnx",
        config=CalibrationConfig(samples=2, batch_size=1, sensitivity=False),
        eval_samples=0,
    )
    return {"fp32": fp32, "fp16": fp16.path, "int8": int8.path}


@pytest.fixture(scope="module")
def fusion(fusion_export: ToOnnxResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_variants(fusion_export.path, tmp_path_factory.mktemp("fusion"))


def parse(text: str) -> Any:
    return text_format.Parse(text, pb.ModelConfig())


def io_of(tensors: Any) -> dict[str, tuple[str, list[int]]]:
    return {t.name: (pb.DataType.Name(t.data_type), list(t.dims)) for t in tensors}


def check_builtin_config(name: str, config: Any, precision: str) -> None:
    spec = get_builtin(name).spec
    inputs, outputs = EXPECTED_IO[name]
    assert config.name == (name if precision == "fp32" else f"{name}_{precision}")  # the file's name
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == spec.dims["batch"].max == 32
    assert io_of(config.input) == inputs and io_of(config.output) == outputs
    assert [t.name for t in config.input] == spec.input_names
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 32]  # the spec's opt batch and max
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert [(pb.ModelInstanceGroup.Kind.Name(g.kind), g.count) for g in config.instance_group] == [
        ("KIND_GPU", 1)
    ]
    assert not config.HasField("optimization") and not config.cc_model_filenames


@pytest.mark.slow
@pytest.mark.parametrize("precision", PRECISIONS)
def test_fusion_configs_parse_with_tritons_schema(fusion: dict[str, Path], precision: str) -> None:
    model = make_model(read_artifacts([fusion[precision]]))
    config = parse(model.config.to_pbtxt())
    check_builtin_config("fusion", config, precision)
    assert json_format.ParseDict(model.config.to_dict(), pb.ModelConfig()) == config


@pytest.mark.slow
@pytest.mark.parametrize("precision", PRECISIONS)
def test_repository_model_runs_with_feeds_shaped_by_its_config(
    fusion: dict[str, Path], precision: str, tmp_path: Path
) -> None:
    source = fusion[precision]
    result = triton_repository([source], tmp_path / "repo")
    folder = tmp_path / "repo" / source.name.removesuffix(".onnx").replace(".", "_")
    assert result.path == folder
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "1",
        "1/model.onnx",
        "config.pbtxt",
        "model.onnx.json",
    ]
    assert (folder / "model.onnx.json").read_bytes() == manifest_path(source).read_bytes()
    config = parse((folder / "config.pbtxt").read_text())
    check_builtin_config("fusion", config, precision)

    spec = get_builtin("fusion").spec
    feed = spec.sample_feed({**spec.point("opt"), "batch": 3}, seed=1)
    for t in config.input:  # the feed fits what Triton will accept
        assert feed[t.name].dtype == NUMPY[pb.DataType.Name(t.data_type)]
        assert feed[t.name].shape[0] <= config.max_batch_size
        assert all(d in (-1, n) for d, n in zip(t.dims, feed[t.name].shape[1:], strict=True))
    copied = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    original = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    got, want = copied.run(None, feed), original.run(None, feed)
    for t, value, expected in zip(config.output, got, want, strict=True):  # and the output is as declared
        assert value.dtype == NUMPY[pb.DataType.Name(t.data_type)]
        assert value.shape[0] == 3 and all(d in (-1, n) for d, n in zip(t.dims, value.shape[1:], strict=True))
        np.testing.assert_array_equal(value, expected)


@pytest.mark.parametrize(
    ("precision", "fp16", "mode"),
    [("fp32", False, "FP32"), ("fp32", True, "FP16"), ("fp16", False, "FP16"), ("int8", False, "INT8")],
)
@pytest.mark.slow
def test_trt_accelerator_precision_follows_the_artifact(
    fusion: dict[str, Path], precision: str, fp16: bool, mode: str
) -> None:
    options = TritonOptions(trt_accelerator=True, fp16=fp16, workspace_bytes=2 << 30)
    config = parse(make_model(read_artifacts([fusion[precision]]), options).config.to_pbtxt())
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    assert dict(accelerator.parameters) == {"precision_mode": mode, "max_workspace_size_bytes": str(2 << 30)}


@pytest.mark.slow
def test_fp16_io_model_declares_fp16_tensors(fusion: dict[str, Path], tmp_path: Path) -> None:
    """``mmexport fp16 --fp16-io``: the graph's FP16 inputs and outputs, not the spec's float32."""
    io16 = to_fp16(
        fusion["fp32"], tmp_path / "io16.onnx", config=Fp16Config(samples=2, fp16_io=True), eval_samples=0
    )
    model = make_model(read_artifacts([io16.path]))
    config = parse(model.config.to_pbtxt())
    inputs, outputs = io_of(config.input), io_of(config.output)
    assert inputs["image"] == ("TYPE_FP16", [3, -1, -1]) and inputs["audio"] == ("TYPE_FP16", [64, -1])
    assert inputs["tokens"] == ("TYPE_INT64", [-1]) and outputs == {"logits": ("TYPE_FP16", [9])}
    assert not any("in the graph (" in n for n in model.notes)  # the manifest's spec says float16 too


@pytest.mark.slow
def test_trt_accelerator_refuses_fp16_on_a_qdq_model(fusion: dict[str, Path]) -> None:
    with pytest.raises(TritonError, match=r"--fp16: .* Q/DQ INT8 model needs INT8"):
        make_model(read_artifacts([fusion["int8"]]), TritonOptions(trt_accelerator=True, fp16=True))


@pytest.mark.slow
def test_max_batch_instances_and_cpu_kind(fusion: dict[str, Path]) -> None:
    options = TritonOptions(max_batch=2, instances=3, kind="cpu", max_queue_delay_us=0, name="f")
    model = make_model(read_artifacts([fusion["fp32"]]), options)
    config = parse(model.config.to_pbtxt())
    assert config.max_batch_size == 2
    assert list(config.dynamic_batching.preferred_batch_size) == [2]  # opt 4 is above max_batch_size
    assert [(pb.ModelInstanceGroup.Kind.Name(g.kind), g.count) for g in config.instance_group] == [
        ("KIND_CPU", 3)
    ]
    assert shlex.split(model.perf_analyzer)[-4:] == ["-b", "2", "--concurrency-range", "1:4"]
    no_batcher = make_model(read_artifacts([fusion["fp32"]]), TritonOptions(dynamic_batching=False))
    assert not parse(no_batcher.config.to_pbtxt()).HasField("dynamic_batching")


@pytest.mark.slow
def test_perf_analyzer_command_uses_the_spec_opt_shapes(fusion: dict[str, Path]) -> None:
    model = make_model(read_artifacts([fusion["fp16"]]))
    words = shlex.split(model.perf_analyzer)
    assert words[:3] == ["perf_analyzer", "-m", "fusion_fp16"]
    shapes = dict(words[i + 1].split(":") for i, w in enumerate(words) if w == "--shape")
    opt = get_builtin("fusion").spec.shapes(get_builtin("fusion").spec.point("opt"))
    assert shapes == {name: ",".join(map(str, shape[1:])) for name, shape in opt.items()}  # no batch dim
    assert words[words.index("-b") + 1] == str(opt["image"][0]) == "4"
    assert any("input 'tokens' takes values in [1, 38)" in n for n in model.notes)


@pytest.mark.slow
def test_cli_json_summary(fusion: dict[str, Path], tmp_path: Path) -> None:
    repo = tmp_path / "models"
    args = [
        "triton",
        str(fusion["int8"]),
        "--repo",
        str(repo),
        "--name",
        "fusion",
        "--trt-accelerator",
        "--json",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["path"] == str(repo / "fusion") and summary["model"] == "fusion"
    assert set(summary["files"]) == {"1/model.onnx", "config.pbtxt", "model.onnx.json"}
    written = parse((repo / "fusion" / "config.pbtxt").read_text())
    assert (
        json_format.ParseDict(summary["config"], pb.ModelConfig())
        == written
        == parse(summary["config_pbtxt"])
    )
    assert summary["perf_analyzer"].startswith("perf_analyzer -m fusion --shape image:3,128,128 ")
    assert "copying" in result.stderr and "note: input 'tokens'" in result.stderr

    again = CliRunner().invoke(cli, args)  # the model folder exists now
    assert again.exit_code == 1
    assert json.loads(again.stdout)["type"] == "ArtifactError"
    assert [line for line in again.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {repo / 'fusion'}: exists already (pass --overwrite to replace it, or choose --name)"
    ]


@pytest.mark.slow
def test_cli_human_output_and_usage_errors(fusion: dict[str, Path], tmp_path: Path) -> None:
    repo = tmp_path / "models"
    result = CliRunner().invoke(cli, ["triton", str(fusion["fp32"]), "--repo", str(repo), "-q"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"wrote {repo / 'fusion'}: onnxruntime_onnx, max_batch_size 32, dynamic batching"
    )
    assert f"serve:     tritonserver --model-repository {repo}" in lines
    assert lines[-1].startswith("load test: perf_analyzer -m fusion ")
    assert "copying" not in result.stderr
    bad = CliRunner().invoke(cli, ["triton", str(fusion["fp32"]), "--repo", str(repo), "--workspace", "lots"])
    assert bad.exit_code == 2 and "--workspace" in bad.stderr


@pytest.mark.slow
def test_seed_configs_parse_with_tritons_schema(seed_export: ToOnnxResult, tmp_path: Path) -> None:
    variants = make_variants(seed_export.path, tmp_path)
    for precision, path in variants.items():
        result = triton_repository([path], tmp_path / "repo")
        check_builtin_config("seed", parse((result.path / "config.pbtxt").read_text()), precision)
