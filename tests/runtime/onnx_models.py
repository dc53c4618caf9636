"""Tiny ONNX models built with ``onnx.helper`` (milliseconds), with manifests, for runtime and bench tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from mmexport.core.files import sha256_file
from mmexport.core.manifest import Manifest
from mmexport.core.spec import ModelSpec

LABELS = ["red", "green", "blue", "tone"]

SPEC: dict[str, Any] = {
    "inputs": [
        {"name": "image", "modality": "image", "dtype": "float32", "shape": ["batch", 3, "height", "width"]},
        {"name": "tokens", "modality": "text", "dtype": "int64", "shape": ["batch", "seq"], "range": [0, 10]},
    ],
    "outputs": [{"name": "logits", "labels": LABELS}],
    "dims": {
        "batch": {"min": 1, "opt": 2, "max": 8},
        "height": {"min": 4, "opt": 8, "max": 16},
        "width": {"min": 4, "opt": 8, "max": 16},
        "seq": {"min": 1, "opt": 5, "max": 12},
    },
}


def tiny_graph(*, dynamic_names: bool = True) -> onnx.ModelProto:
    """logits[b] = [mean(image[b, c]) for c in 0..2] + [sum(tokens[b])]: easy to check by hand."""
    b, h, w, s = ("batch", "height", "width", "seq") if dynamic_names else (None, None, None, None)
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [b, 3, h, w])
    tokens = helper.make_tensor_value_info("tokens", TensorProto.INT64, [b, s])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [b, 4])
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["means"], axes=[2, 3], keepdims=0),
        helper.make_node("ReduceSum", ["tokens", "one"], ["token_sum"], keepdims=1),
        helper.make_node("Cast", ["token_sum"], ["token_float"], to=TensorProto.FLOAT),
        helper.make_node("Concat", ["means", "token_float"], ["logits"], axis=1),
    ]
    one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(nodes, "tiny", [image, tokens], [logits], initializer=[one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def expected_logits(image: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    return np.concatenate([image.mean(axis=(2, 3)), tokens.sum(axis=1, keepdims=True)], axis=1).astype(
        np.float32
    )


def write_tiny(folder: Path, name: str = "tiny.onnx", *, manifest: bool = True) -> Path:
    """The tiny model at ``folder/name`` with (by default) its manifest beside it."""
    path = folder / name
    onnx.save(tiny_graph(), str(path))
    if manifest:
        spec = ModelSpec.from_dict(SPEC)
        Manifest("onnx", path.name, sha256_file(path), spec, "fp32").write(path)
    return path


def feeds(
    batch: int = 2, height: int = 8, width: int = 8, seq: int = 5, seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.standard_normal((batch, 3, height, width)).astype(np.float32),
        "tokens": rng.integers(0, 10, (batch, seq)).astype(np.int64),
    }
