"""Engines take part in accuracy reports through the runtime (fake TensorRT and CUDA here)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mmexport.core.files import sha256_file
from mmexport.core.manifest import Manifest
from mmexport.precision.accuracy import evaluate
from mmexport.precision.stages import accuracy

from .engines import SPEC, feeds, write_engine


def score_onnx(path, *, offset: float = 0.0):
    """The fake engine's function in ONNX: image summed over (1, 2) + tokens summed over 1."""
    axes12 = numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes12")
    axes1 = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes1")
    shift = numpy_helper.from_array(np.array(offset, dtype=np.float32), "shift")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["image", "axes12"], ["a"], keepdims=0),
            helper.make_node("ReduceSum", ["tokens", "axes1"], ["t"], keepdims=0),
            helper.make_node("Cast", ["t"], ["tf"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["a", "tf"], ["s"]),
            helper.make_node("Add", ["s", "shift"], ["score"]),
        ],
        "score",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 4]),
            helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])],
        [axes12, axes1, shift],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    Manifest(kind="onnx", artifact=path.name, sha256=sha256_file(path), spec=SPEC, precision="fp32").write(
        path
    )
    return path


class Batch:
    def __init__(self, feed):
        self.feed, self.labels = feed, None


def test_an_engine_is_evaluated_against_its_onnx(tmp_path, fake_trt, fake_cuda):
    reference = score_onnx(tmp_path / "model.onnx")
    shifted = score_onnx(tmp_path / "shifted.onnx", offset=0.5)
    engine = write_engine(tmp_path, fake_trt)
    batches = [Batch(feeds(batch=b, seq=5, seed=b)) for b in (1, 2, 3)]
    report = evaluate(
        [("onnx", "fp32", reference), ("engine", "fp16", engine), ("shifted", "fp32", shifted)],
        batches,
        SPEC,
        source="test",
    )
    engine_row, shifted_row = report.variants[1].outputs[0], report.variants[2].outputs[0]
    assert report.samples == 6
    assert engine_row.max_abs < 1e-4 and engine_row.cosine_min > 0.9999  # same function, via the runtime
    assert shifted_row.max_abs > 0.49  # a different one is told apart
    assert any(name == "execute_async_v3" for name, *_ in fake_trt.calls)


def test_accuracy_takes_engines_after_the_onnx_reference(tmp_path, fake_trt, fake_cuda):
    reference = score_onnx(tmp_path / "model.onnx")
    engine = write_engine(tmp_path, fake_trt)
    report = accuracy([reference, engine], data=[feeds(batch=2, seq=4, seed=s) for s in range(3)])
    assert [(v.name, v.precision) for v in report.variants] == [
        ("model.onnx", "fp32"),
        ("model.engine", "fp16"),
    ]
    assert report.variants[1].outputs[0].max_abs < 1e-4
