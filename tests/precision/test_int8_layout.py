"""Which tensors INT8 quantizes, how the Q/DQ is laid out per runtime, and what the cache holds."""

from __future__ import annotations

import collections
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from mmexport.core.errors import ConfigError
from mmexport.core.manifest import read_manifest
from mmexport.precision import calib_cache
from mmexport.precision.collect import collect_stats
from mmexport.precision.qdq import choose_ranges, insert_qdq, quantizable_nodes, quantized_tensors
from mmexport.precision.stages import CalibrationConfig, calibrate
from mmexport.precision.stats import TensorStats
from precision.precision_data import tiny_feeds


def attention_model(channels: int = 16) -> onnx.ModelProto:
    """x[N,C,8,8] -Conv-Relu-GAP-Flatten-> f[N,4] -Gemm-> h[N,8] -Reshape-> [N,2,4];
    scores = h x h^T (activation MatMul) -Softmax-> p; p x h (activation MatMul) -MatMul(w)-> y."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, channels, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "conv_b"),
        numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "gemm_w"),
        numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32), "gemm_b"),
        numpy_helper.from_array(np.array([0, 2, 4], dtype=np.int64), "heads"),
        numpy_helper.from_array(rng.normal(size=(4, 5)).astype(np.float32), "out_w"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p0"], name="pool"),
        helper.make_node("Flatten", ["p0"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "gemm_w", "gemm_b"], ["h"], name="gemm", transB=1),
        helper.make_node("Reshape", ["h", "heads"], ["hh"], name="split_heads"),
        helper.make_node("Transpose", ["hh"], ["ht"], name="transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["hh", "ht"], ["scores"], name="qk"),
        helper.make_node("Softmax", ["scores"], ["probs"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["probs", "hh"], ["ctx"], name="pv"),
        helper.make_node("MatMul", ["ctx", "out_w"], ["y"], name="out_proj"),
    ]
    graph = helper.make_graph(
        nodes,
        "attention",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", channels, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, 5])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def feeds(count: int, seed: int = 0, channels: int = 16) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(size=(4, channels, 8, 8)).astype(np.float32)} for _ in range(count)]


def ranges(model: onnx.ModelProto, layout: str = "tensorrt") -> dict[str, float]:
    channels = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    data = feeds(4, channels=channels)
    stats, _ = collect_stats(model, data, tensors=quantized_tensors(model, layout=layout))
    return choose_ranges(model, stats, "minmax", 99.99)


def quantized_inputs(model: onnx.ModelProto) -> set[str]:
    return {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}


def test_only_weighted_ops_are_quantized_attention_matmuls_stay_float() -> None:
    model = attention_model()
    assert [n.name for n in quantizable_nodes(model)] == ["conv", "gemm", "out_proj"]
    assert quantized_tensors(model) == ["x", "f", "ctx"]  # never the softmax output
    result = insert_qdq(model, ranges(model))
    assert result.quantized_nodes == ["conv", "gemm", "out_proj"]
    assert quantized_inputs(result.model) == {"x", "f", "ctx"}
    assert set(result.activation_scales) == {"x", "f", "ctx"}
    # an activation MatMul named explicitly is still quantized (and only then needs ranges)
    assert quantized_tensors(model, nodes=["pv"]) == ["probs", "hh"]


def test_bounded_outputs_keep_their_observed_maximum() -> None:
    model = attention_model()
    stats = {name: TensorStats(name) for name in ("probs", "f")}
    rng = np.random.default_rng(0)
    peaked = np.concatenate([rng.uniform(0, 0.05, 100_000), [0.99]]).astype(np.float32)
    for s in stats.values():
        s.update(peaked)
    chosen = choose_ranges(model, stats, "entropy", 99.99)
    assert chosen["probs"] == pytest.approx(0.99)  # a softmax output is never clipped
    assert chosen["f"] < 0.5  # what entropy does to any other tensor with this histogram


def optimized_ops(model: onnx.ModelProto, folder: Path) -> collections.Counter[str]:
    """The op types onnxruntime's CPU graph optimizer leaves in ``model``."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(folder / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(str(folder / "optimized.onnx")).graph.node)


def test_onnxruntime_layout_fuses_into_qlinear_ops(tmp_path: Path) -> None:
    model = attention_model()
    onnxrt = insert_qdq(model, ranges(model, "onnxruntime"), layout="onnxruntime")
    tensorrt = insert_qdq(model, ranges(model), layout="tensorrt")
    # onnxruntime's layout also quantizes each op's output (not a graph output) and its bias
    assert quantized_inputs(onnxrt.model) == {"x", "f", "ctx", "c", "h"}
    inits = {i.name: numpy_helper.to_array(i) for i in onnxrt.model.graph.initializer}
    assert inits["conv_b_quantized"].dtype == np.int32 and inits["gemm_b_quantized"].dtype == np.int32
    ops = optimized_ops(onnxrt.model, tmp_path)
    assert ops["QLinearConv"] == 1 and ops["Conv"] == ops["FusedConv"] == 0
    assert ops["QGemm"] == 1 and ops["Gemm"] == 0
    # TensorRT's layout leaves onnxruntime a float Conv behind Q/DQ: why the option exists
    assert optimized_ops(tensorrt.model, tmp_path)["QLinearConv"] == 0
    feed = feeds(1, seed=5)[0]
    expected = ort.InferenceSession(model.SerializeToString()).run(None, feed)[0]
    actual = ort.InferenceSession(onnxrt.model.SerializeToString()).run(None, feed)[0]
    cosine = float((expected * actual).sum() / np.linalg.norm(expected) / np.linalg.norm(actual))
    assert cosine > 0.95 and not np.array_equal(expected, actual)  # softmax sharpens INT8 noise


def test_onnxruntime_layout_keeps_an_rgb_stem_conv_float() -> None:
    model = attention_model(channels=3)
    assert "x" not in quantized_tensors(model, layout="onnxruntime")
    result = insert_qdq(model, ranges(model, "onnxruntime"), layout="onnxruntime")
    assert result.quantized_nodes == ["gemm", "out_proj"]
    assert "fewer than 16 input channels" in result.skipped["conv"]
    assert "conv" in insert_qdq(model, ranges(model)).quantized_nodes  # TensorRT's layout: INT8


def test_unknown_layout_is_refused() -> None:
    with pytest.raises(ConfigError, match="layout must be one of tensorrt, onnxruntime, got 'tflite'"):
        CalibrationConfig(layout="tflite")


def test_a_subset_of_nodes_quantizes_and_reports_only_its_tensors() -> None:
    model = attention_model()
    result = insert_qdq(model, ranges(model), nodes=["gemm"])
    assert result.quantized_nodes == ["gemm"] and set(result.activation_scales) == {"f"}


@pytest.mark.parametrize("layout", ["tensorrt", "onnxruntime"])
def test_calibration_cache_holds_exactly_the_quantized_tensors(
    tiny_fp32_onnx: Path, tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmexport.precision import stages

    observed: list[list[str] | None] = []
    real = stages.collect_stats

    def spy(model, data, *, tensors=None, progress=None, histograms=True):  # type: ignore[no-untyped-def]
        observed.append(tensors)
        assert not histograms  # the default minmax needs none
        return real(model, data, tensors=tensors, progress=progress, histograms=histograms)

    monkeypatch.setattr(stages, "collect_stats", spy)
    config = CalibrationConfig(samples=8, batch_size=2, sensitivity=False, layout=layout)
    out = tmp_path / "tiny.int8.onnx"
    result = calibrate(tiny_fp32_onnx, out, data=tiny_feeds(4), config=config, eval_samples=0)
    written = onnx.load(str(out))
    quantized = quantized_inputs(written)
    assert result.cache is not None
    _, scales = calib_cache.parse_cache(result.cache.read_text())
    assert set(scales) == quantized  # no scale for a tensor the Q/DQ model keeps float
    inits = {i.name: numpy_helper.to_array(i) for i in written.graph.initializer}
    for name, scale in scales.items():
        assert math.isclose(scale, float(inits[f"{name}_scale"]), rel_tol=1e-6)
    # statistics were collected for those tensors only, not for every activation
    assert observed == [quantized_tensors(onnx.load(str(tiny_fp32_onnx)), layout=layout)]
    assert set(observed[0] or []) == quantized
    manifest = read_manifest(out)
    assert manifest is not None and manifest.producer.details["layout"] == layout


def test_cli_layout_option(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    from mmexport.cli.app import cli

    runner = CliRunner()
    out = tmp_path / "cli.int8.onnx"
    args = ["calibrate", str(tiny_fp32_onnx), "-o", str(out), "--samples", "4", "-q"]
    done = runner.invoke(cli, [*args, "--eval-samples", "0", "--layout", "onnxruntime"])
    assert done.exit_code == 0, done.output
    manifest = read_manifest(out)
    assert manifest is not None and manifest.producer.details["layout"] == "onnxruntime"
    bad = runner.invoke(cli, [*args, "--layout", "tflite"])
    assert bad.exit_code == 2 and "'tflite' is not one of 'tensorrt', 'onnxruntime'" in bad.output


def test_statistics_of_graph_inputs_only() -> None:
    """The stem's input alone quantized (nothing computed observed): the model still runs once per
    batch, and the input's range is its min/max."""
    model = attention_model()
    data = feeds(2)
    stats, seen = collect_stats(model, data, tensors=["x"], histograms=False)
    assert seen == 8 and set(stats) == {"x"}
    assert stats["x"].amax == pytest.approx(max(float(np.abs(f["x"]).max()) for f in data))
