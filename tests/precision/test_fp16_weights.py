"""FP16 conversion on a weightless copy: the weights it fills in are the converter's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from mmexport.core.onnx_file import read_onnx
from mmexport.precision.fp16 import convert_fp16, plan_fp16, to_float16


def test_weights_filled_in_match_onnxruntimes_converter(tiny_fp32_onnx: Path) -> None:
    """Every initializer of the variant has the values and type onnxruntime's converter gives on
    a full copy (FP16 where a converted node reads it, FP32 where only kept nodes do), and the
    source proto is left as it was."""
    from onnxruntime.transformers import float16

    model = read_onnx(tiny_fp32_onnx)
    plan = plan_fp16(model, keep_patterns=("Gemm",))
    before = model.SerializeToString()
    ours = convert_fp16(model, plan)
    assert model.SerializeToString() == before
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    theirs = float16.convert_float_to_float16(
        copy,
        keep_io_types=True,
        op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST),
        node_block_list=sorted(plan.keep),
    )
    expected = {t.name: t for t in theirs.graph.initializer}
    got = {t.name: t for t in ours.graph.initializer}
    assert set(got) <= set(expected) and got
    types = {t.data_type for t in got.values()}
    assert {onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT} <= types  # Gemm's weights stay FP32
    for name, tensor in got.items():
        assert tensor.data_type == expected[name].data_type, name
        np.testing.assert_array_equal(numpy_helper.to_array(tensor), numpy_helper.to_array(expected[name]))


def test_a_mapped_source_gives_the_same_variant(fusion_export) -> None:  # type: ignore[no-untyped-def]
    """Converting from the graph with its weights left in the file (``read_mapped``) gives the
    variant that converting the parsed model gives, byte for byte."""
    from mmexport.core.onnx_mapped import read_mapped

    mapped = read_mapped(fusion_export.path)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in mapped.proto.graph.initializer)
    parsed = read_onnx(fusion_export.path)
    plan = plan_fp16(parsed, keep_patterns=("Gemm",))
    ours = convert_fp16(mapped, plan)
    assert ours.SerializeToString() == convert_fp16(parsed, plan).SerializeToString()
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in ours.graph.initializer)


@pytest.mark.parametrize("scale", [1e-9, 1e-7, 1e-5, 1.0, 1e4, 7e4, 1e38])
def test_to_float16_gives_the_converters_bits(scale: float) -> None:
    """``to_float16`` is onnxruntime's ``convert_np_to_float16`` (clipping to FP16's range, tiny
    values kept non-zero with their sign), bit for bit, on random values and on the edges."""
    from onnxruntime.transformers import float16

    edges = [0.0, -0.0, np.inf, -np.inf, 65504, 65519, 65520, -65520, 1e-8, -1e-8, 2.98e-8, 3e-8]
    edges += [5.96e-8, 5.9604645e-8, -5.96e-8, 1e30, -1e30]
    with np.errstate(over="ignore"):  # scale 1e38: some values are inf in float32, as meant
        values = (
            np.concatenate([np.random.default_rng(0).standard_normal(4983) * scale, edges])
            .astype(np.float32)
            .reshape(-1, 10)
        )
    ours, theirs = to_float16(values), float16.convert_np_to_float16(values)
    assert ours.dtype == np.float16 and ours.shape == values.shape
    np.testing.assert_array_equal(ours.view(np.uint16), theirs.view(np.uint16))
