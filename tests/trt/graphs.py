"""Small ONNX graphs built with onnx.helper, each with one problem TensorRT's parser refuses."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(nodes, inputs, outputs, initializers=(), opset: int = 18, **kw) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *kw.get("extra", [])])


def relu(opset: int = 18) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    return model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [x], [y], opset=opset)


def dynamic_loop() -> onnx.ModelProto:
    """A Loop that scans out one row per step, with its trip count read from the input's shape."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["steps", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["steps", 4])
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Unsqueeze", ["i", "zero_axis"], ["i1"]),
            helper.make_node("Gather", ["x", "i"], ["row"], axis=0),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("row", TensorProto.FLOAT, [4]),
        ],
        [numpy_helper.from_array(np.array([0], np.int64), "zero_axis")],
    )
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["trip"], axis=0, name="trip_count"),
        helper.make_node(
            "Loop",
            [
                "trip",
                "true",
            ],
            ["y"],
            body=body,
            name="rows",
        ),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(True), "true"),
    ]
    return model(nodes, [x], [y], inits)


def qdq(zero_point: int = 0, domain: str = "", zp_type=np.int8) -> onnx.ModelProto:
    """x -> QuantizeLinear -> DequantizeLinear -> y with the given zero point, type and domain."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
        numpy_helper.from_array(np.array(zero_point, zp_type), "zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"], name="q", domain=domain),
        helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"], name="dq", domain=domain),
    ]
    extra = [helper.make_opsetid(domain, 1)] if domain else []
    return model(nodes, [x], [y], inits, extra=extra)


def single_op(op_type: str, n_inputs: int = 1, **attrs) -> onnx.ModelProto:
    names = [f"in{i}" for i in range(n_inputs)]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 4]) for n in names]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return model([helper.make_node(op_type, names, ["y"], name="n", **attrs)], inputs, [y], opset=24)


def lstm(**attrs) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", 1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [
        numpy_helper.from_array(np.zeros((1, 16, 3), np.float32), "W"),
        numpy_helper.from_array(np.zeros((1, 16, 4), np.float32), "R"),
    ]
    node = helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="lstm", hidden_size=4, **attrs)
    return model([node], [x], [y], inits)
