"""Branch attribution follows values from each input until branches meet, not shape reads."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from mmexport.core.spec import ModelSpec
from mmexport.precision.sensitivity import branches

D = 8  # text width
CONVS = 9
LAYERS = 4

SPEC = ModelSpec.from_dict(
    {
        "inputs": [
            {"name": "image", "modality": "image", "dtype": "float32", "shape": ["batch", 3, 8, 8]},
            {
                "name": "tokens",
                "modality": "text",
                "dtype": "int64",
                "shape": ["batch", "seq"],
                "range": [0, 10],
            },
        ],
        "outputs": ["logits"],
        "dims": {"batch": {"min": 1, "opt": 2, "max": 4}, "seq": {"min": 1, "opt": 5, "max": 8}},
    }
)


class Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(0)

    def weight(self, name: str, *shape: int) -> str:
        self.inits.append(numpy_helper.from_array(self.rng.normal(size=shape).astype(np.float32) * 0.3, name))
        return name

    def const(self, name: str, value: list[int]) -> str:
        self.inits.append(numpy_helper.from_array(np.array(value, dtype=np.int64), name))
        return name

    def op(self, op: str, inputs: list[str], name: str, **attrs: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name


def image_text_model() -> onnx.ModelProto:
    """A conv image branch (9 Conv), a 4-layer transformer text branch (QKV, output, two
    feed-forward MatMuls per layer, plus the two attention MatMuls) and a 2-layer MLP head; the
    text layers reshape with the batch size read from the image input's shape, as torch.export
    writes it when both inputs share the symbolic batch dim."""
    b = Builder()
    x = "image"
    for i in range(CONVS):
        x = b.op("Conv", [x, b.weight(f"conv{i}_w", 4, 3 if i == 0 else 4, 3, 3)], f"conv{i}", pads=[1] * 4)
        x = b.op("Relu", [x], f"conv{i}_relu")
    image = b.op("Flatten", [b.op("GlobalAveragePool", [x], "pool")], "image_features")
    batch = b.op("Shape", ["image"], "image_shape", start=0, end=1)  # the exporter's shared batch dim
    heads = b.op("Concat", [batch, b.const("rest", [-1, D])], "heads_shape", axis=0)
    t = b.op("Gather", [b.weight("embedding", 10, D), "tokens"], "embedded")
    for i in range(LAYERS):
        qkv = b.op("MatMul", [t, b.weight(f"l{i}_qkv_w", D, 3 * D)], f"l{i}_qkv_proj")
        q, k, v = (f"l{i}_{n}" for n in "qkv")
        b.nodes.append(
            helper.make_node("Split", [qkv], [q, k, v], name=f"l{i}_split", axis=-1, num_outputs=3)
        )
        q, k, v = (b.op("Reshape", [n, heads], f"{n}_heads") for n in (q, k, v))
        scores = b.op("MatMul", [q, b.op("Transpose", [k], f"l{i}_kt", perm=[0, 2, 1])], f"l{i}_scores")
        ctx = b.op("MatMul", [b.op("Softmax", [scores], f"l{i}_softmax", axis=-1), v], f"l{i}_context")
        out = b.op("MatMul", [ctx, b.weight(f"l{i}_o_w", D, D)], f"l{i}_out_proj")
        t = b.op("Add", [t, out], f"l{i}_res1")
        hidden = b.op(
            "Relu", [b.op("MatMul", [t, b.weight(f"l{i}_ff1_w", D, 2 * D)], f"l{i}_ff1")], f"l{i}_act"
        )
        t = b.op(
            "Add", [t, b.op("MatMul", [hidden, b.weight(f"l{i}_ff2_w", 2 * D, D)], f"l{i}_ff2")], f"l{i}_res2"
        )
    text = b.op("ReduceMean", [t, b.const("seq_axis", [1])], "text_features", keepdims=0)
    fused = b.op("Concat", [image, text], "fused", axis=1)
    hidden = b.op(
        "Relu", [b.op("Gemm", [fused, b.weight("head1_w", 16, 4 + D)], "head1", transB=1)], "head_act"
    )
    b.op("Gemm", [hidden, b.weight("head2_w", 3, 16)], "logits", transB=1)
    graph = helper.make_graph(
        b.nodes,
        "image_text",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8]),
            helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        b.inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_text_encoder_layers_count_as_text_though_they_read_the_image_shape() -> None:
    model = image_text_model()
    onnx.checker.check_model(model, full_check=True)
    feed = {
        "image": np.random.default_rng(1).normal(size=(2, 3, 8, 8)).astype(np.float32),
        "tokens": np.array([[1, 2, 3, 0], [4, 5, 6, 7]], dtype=np.int64),
    }
    (logits,) = ort.InferenceSession(model.SerializeToString()).run(None, feed)
    assert logits.shape == (2, 3)
    found = branches(model, SPEC)
    assert {name: len(nodes) for name, nodes in found.items()} == {"image": 9, "text": 16, "fusion": 2}
    assert found["fusion"] == ["head1", "logits"]
    assert found["text"][:4] == ["l0_qkv_proj", "l0_out_proj", "l0_ff1", "l0_ff2"]
