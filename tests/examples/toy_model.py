"""A toy ONNX model with the default model's spec (image, tokens, audio -> 9 labelled logits).

Built with ``onnx.helper`` in milliseconds, so the examples' core is tested end to end without
exporting anything; its logits are simple enough to predict by hand:

    logits = [mean of each image channel (3)] + [mean token id * (0.01, 0.02, 0.03)]
             + [mean log-mel of three mel bands / 100]

so a saturated red frame decides "red", a blue one "blue".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mmexport.core.files import sha256_file
from mmexport.core.manifest import Manifest
from mmexport.models import DEFAULT_MODEL, get_builtin

SPEC = get_builtin(DEFAULT_MODEL).spec


def toy_graph() -> onnx.ModelProto:
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    tokens = helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"])
    audio = helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", 64, "frames"])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 9])
    bands = np.zeros((64, 3), np.float32)
    for k in range(3):
        bands[k * 21 : (k + 1) * 21, k] = 1.0 / (21 * 100)
    constants = [
        numpy_helper.from_array(np.array([[0.01, 0.02, 0.03]], np.float32), "token_weights"),
        numpy_helper.from_array(bands, "bands"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["channel_means"], axes=[2, 3], keepdims=0),
        helper.make_node("Cast", ["tokens"], ["token_floats"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["token_floats"], ["token_mean"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["token_mean", "token_weights"], ["token_logits"]),
        helper.make_node("ReduceMean", ["audio"], ["mel_means"], axes=[2], keepdims=0),
        helper.make_node("MatMul", ["mel_means", "bands"], ["audio_logits"]),
        helper.make_node("Concat", ["channel_means", "token_logits", "audio_logits"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(nodes, "toy", [image, tokens, audio], [logits], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_toy(folder: Path, name: str = "toy.onnx") -> Path:
    """The toy model at ``folder/name`` with a manifest carrying the default model's spec."""
    path = folder / name
    onnx.save(toy_graph(), str(path))
    Manifest("onnx", path.name, sha256_file(path), SPEC, "fp32").write(path)
    return path
