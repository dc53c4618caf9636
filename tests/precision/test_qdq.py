"""Q/DQ placement follows TensorRT's rules, and the native cache round-trips the collected ranges."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mmexport.core.errors import MmexportError
from mmexport.precision import calib_cache
from mmexport.precision.collect import collect_stats
from mmexport.precision.qdq import QUANTIZED_OPS, insert_qdq


def small_model() -> onnx.ModelProto:
    """x[N,3,8,8] -Conv-> Relu -GlobalAveragePool-> Flatten -Gemm(transB)-> g; q[N,6] -MatMul(W)-> y;
    g x g^T (activation x activation MatMul) -> s."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "conv_b"),
        numpy_helper.from_array(rng.normal(size=(5, 4)).astype(np.float32), "gemm_w"),
        numpy_helper.from_array(rng.normal(size=(6, 7)).astype(np.float32), "mm_w"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "gemm_w"], ["g"], name="gemm", transB=1),
        helper.make_node("MatMul", ["q", "mm_w"], ["y"], name="matmul"),
        helper.make_node("Transpose", ["g"], ["gt"], name="transpose"),
        helper.make_node("MatMul", ["g", "gt"], ["s"], name="act_matmul"),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8]),
            helper.make_tensor_value_info("q", TensorProto.FLOAT, ["n", 6]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 7]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, ["n", "n"]),
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def feeds(count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "x": rng.normal(size=(4, 3, 8, 8)).astype(np.float32),
            "q": rng.normal(size=(4, 6)).astype(np.float32),
        }
        for _ in range(count)
    ]


def run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


@pytest.fixture(scope="module")
def quantized() -> tuple[onnx.ModelProto, onnx.ModelProto, dict[str, float]]:
    model = small_model()
    stats, seen = collect_stats(model, feeds(5))
    assert seen == 20
    amax = {name: s.range_amax("minmax") for name, s in stats.items()}
    return model, insert_qdq(model, amax).model, amax


def test_qdq_follows_tensorrt_rules(
    quantized: tuple[onnx.ModelProto, onnx.ModelProto, dict[str, float]],
) -> None:
    _, model, amax = quantized
    onnx.checker.check_model(model)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq and all(n.domain in ("", "ai.onnx") for n in qdq)
    for node in qdq:  # symmetric INT8 everywhere
        zero = inits[node.input[2]]
        assert zero.dtype == np.int8 and not zero.any()
    for node in model.graph.node:
        if node.op_type in QUANTIZED_OPS and node.name != "act_matmul":
            # every data input of a weighted op comes through a DequantizeLinear, outputs are not
            data_inputs = node.input[:1] if node.op_type == "Conv" else node.input[:2]
            assert all(producer[i].op_type == "DequantizeLinear" for i in data_inputs), node.name
    quantized_tensors = {n.input[0] for n in qdq if n.op_type == "QuantizeLinear"}
    # only tensors read by weighted Conv/MatMul/Gemm are quantized: graph outputs, Relu inputs and
    # an activation x activation MatMul's inputs are not
    assert quantized_tensors == {"x", "f", "q"}
    # weights: INT8 per output channel, along the right axis
    weight_dq = {n.input[0]: n for n in qdq if n.input[0] in inits and inits[n.input[0]].dtype == np.int8}
    axes = {name: next(a.i for a in n.attribute if a.name == "axis") for name, n in weight_dq.items()}
    assert axes == {"conv_w_quantized": 0, "gemm_w_quantized": 0, "mm_w_quantized": 1}
    assert inits["conv_w_scale"].shape == (4,) and inits["gemm_w_scale"].shape == (5,)
    assert inits["mm_w_scale"].shape == (7,)
    # activations: per tensor, scale = amax / 127
    assert inits["x_scale"].shape == ()
    assert float(inits["x_scale"]) == pytest.approx(amax["x"] / 127, rel=1e-6)
    assert {"q_scale", "f_scale"} <= set(inits) and "g_scale" not in inits
    assert "c_scale" not in inits and "y_scale" not in inits  # Conv / MatMul outputs stay float


def test_qdq_model_runs_in_onnxruntime_close_to_fp32(
    quantized: tuple[onnx.ModelProto, onnx.ModelProto, dict[str, float]],
) -> None:
    fp32, int8, _ = quantized
    feed = feeds(1, seed=9)[0]
    for expected, actual in zip(run(fp32, feed), run(int8, feed), strict=True):
        cosine = (expected * actual).sum() / np.linalg.norm(expected) / np.linalg.norm(actual)
        assert cosine > 0.99
        assert not np.array_equal(expected, actual)  # it really is quantized


def test_nodes_without_range_stay_float_and_subset_quantizes_only_those() -> None:
    model = small_model()
    result = insert_qdq(model, {"x": 3.0}, nodes=["conv", "matmul"])
    assert result.quantized_nodes == ["conv"]
    assert "no calibration range for 'q'" in result.skipped["matmul"]
    ops = [n.op_type for n in result.model.graph.node]
    assert ops.count("QuantizeLinear") == 1


def test_old_opset_is_refused() -> None:
    model = small_model()
    model.opset_import[0].version = 12
    with pytest.raises(MmexportError, match="opset >= 13"):
        insert_qdq(model, {})


def test_cache_round_trip_scale_is_amax_over_127() -> None:
    model = small_model()
    stats, _ = collect_stats(model, feeds(3))
    amax = {name: s.range_amax("entropy") for name, s in stats.items()}
    text = calib_cache.format_cache({n: a / 127 for n, a in amax.items()}, "entropy", "10.3.0")
    head, scales = calib_cache.parse_cache(text)
    assert head == "TRT-100300-EntropyCalibration2"
    assert set(scales) == set(amax) and {"x", "c", "r", "g", "y", "s"} <= set(scales)
    for name, scale in scales.items():
        assert scale == pytest.approx(amax[name] / 127, rel=1e-7)
        assert scale == np.float32(amax[name] / 127)  # the file holds exactly the float32 value
    line = next(line for line in text.splitlines() if line.startswith("x: "))
    assert len(line.split(": ")[1]) == 8


def test_cache_headers_and_versions() -> None:
    assert calib_cache.trt_version_number("10.3.0") == 100300
    assert calib_cache.trt_version_number("11.4.0.106") == 110400
    assert calib_cache.trt_version_number("8.6.1") == 8601
    assert calib_cache.header("minmax", "10.13.3") == "TRT-101303-MinMaxCalibration"
    assert calib_cache.scale_to_hex(1.0) == "3f800000"
    retargeted = calib_cache.rewrite_version("TRT-8601-EntropyCalibration2\nx: 3f800000\n", "10.3.0")
    assert retargeted == "TRT-100300-EntropyCalibration2\nx: 3f800000\n"
    with pytest.raises(MmexportError, match="first line"):
        calib_cache.parse_cache("x: 3f800000\n")
    with pytest.raises(MmexportError, match="line 2"):
        calib_cache.parse_cache("TRT-100300-EntropyCalibration2\nx 3f800000\n")
    with pytest.raises(MmexportError, match=r"10\.3\.0"):
        calib_cache.trt_version_number("ten")


def test_weights_left_float_keep_their_values_and_the_source_is_untouched() -> None:
    model = small_model()
    # a weight stored as float_data rather than raw bytes is carried over too
    model.graph.initializer.append(helper.make_tensor("extra", TensorProto.FLOAT, [2], [1.5, -2.0]))
    before = model.SerializeToString()
    result = insert_qdq(model, {"q": 1.0, "x": 1.0, "f": 1.0, "g": 1.0}, nodes=["matmul"])
    assert model.SerializeToString() == before
    assert result.quantized_nodes == ["matmul"]
    made = {init.name: init for init in result.model.graph.initializer}
    source = {init.name: init for init in model.graph.initializer}
    for name in ("conv_w", "conv_b", "gemm_w"):  # nodes left float: their weights as they were
        assert made[name] == source[name]
    assert "mm_w" not in made and "extra" not in made  # quantized, and unused: neither kept
    assert numpy_helper.to_array(made["mm_w_quantized"]).dtype == np.int8
    onnx.checker.check_model(result.model)


@pytest.mark.parametrize("layout", ["tensorrt", "onnxruntime"])
def test_a_mapped_source_gives_the_same_qdq_model(fusion_export, layout: str) -> None:  # type: ignore[no-untyped-def]
    """Q/DQ inserted on the graph with its weights left in the file (``read_mapped``: weights read
    one at a time from the file) is the model inserted on the parsed proto, byte for byte."""
    from mmexport.core.onnx_file import read_onnx
    from mmexport.core.onnx_mapped import read_mapped
    from mmexport.precision.graph import activation_tensors

    mapped = read_mapped(fusion_export.path)
    parsed = read_onnx(fusion_export.path)
    amax = {name: 2.0 for name in activation_tensors(parsed)}
    ours = insert_qdq(mapped, amax, layout=layout)
    theirs = insert_qdq(parsed, amax, layout=layout)
    assert ours.quantized_nodes == theirs.quantized_nodes and ours.quantized_nodes
    assert ours.model.SerializeToString() == theirs.model.SerializeToString()
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in ours.model.graph.initializer)


def test_an_int8_evaluation_dequantizes_weights_once_and_quantizes_activations_as_written(
    fusion_export, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """``fold_dequantize``: onnxruntime folds each weight's DequantizeLinear into a float constant
    at load, and leaves every activation Q/DQ pair and op as written (no integer kernels, which
    saturate on CPUs without VNNI); onnxruntime's own optimized graph is read back to check."""
    from mmexport.core.onnx_file import read_onnx
    from mmexport.precision.graph import activation_tensors
    from mmexport.runtime.backends.onnxrt.loader import open_model

    parsed = read_onnx(fusion_export.path)
    qdq = insert_qdq(parsed, {name: 2.0 for name in activation_tensors(parsed)}).model
    path = tmp_path / "q.onnx"
    onnx.save(qdq, str(path))
    real = ort.InferenceSession

    def keeping_the_optimized_graph(source, options, **kwargs):  # type: ignore[no-untyped-def]
        options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
        return real(source, options, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", keeping_the_optimized_graph)
    open_model(path, optimize=False, fold_dequantize=True)
    optimized = onnx.load(str(tmp_path / "optimized.onnx"))
    constants = {init.name for init in optimized.graph.initializer}

    def ops(model: onnx.ModelProto) -> list[str]:
        return sorted(n.op_type for n in model.graph.node)

    weight_dq = [
        n for n in optimized.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in constants
    ]
    assert weight_dq == []
    qdq_ops = ("QuantizeLinear", "DequantizeLinear")
    assert [n for n in ops(optimized) if n not in qdq_ops] == [n for n in ops(qdq) if n not in qdq_ops]
    # every activation still quantized (onnxruntime may carry a pair past a Reshape or Transpose,
    # which changes no value: the same scale on both sides)
    assert ops(optimized).count("QuantizeLinear") >= ops(qdq).count("QuantizeLinear") > 0
