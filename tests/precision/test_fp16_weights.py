"""FP16 conversion on a weightless copy: the weights it fills in are the converter's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from mmexport.core.onnx_file import read_onnx
from mmexport.precision.fp16 import convert_fp16, plan_fp16


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
