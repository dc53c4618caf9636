"""``evaluate`` runs its models one after another: the same figures as each model's outputs give
when computed side by side, with one onnxruntime session open at a time (memory pattern off)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mmexport.core.spec import ModelSpec
from mmexport.precision import accuracy as accuracy_module
from mmexport.precision.accuracy import evaluate
from mmexport.precision.common import FeedBatch

SPEC = ModelSpec.from_dict(
    {
        "inputs": [{"name": "x", "modality": "sensor", "dtype": "float32", "shape": ["n", 4]}],
        "outputs": [{"name": "y", "labels": ["a", "b", "c", "d"]}],
        "dims": {"n": {"min": 1, "opt": 2, "max": 8}},
    }
)


def affine(scale: list[float], shift: list[float]) -> onnx.ModelProto:
    """y = x * scale + shift, x and y [n, 4]."""
    inits = [
        numpy_helper.from_array(np.array(scale, dtype=np.float32), "scale"),
        numpy_helper.from_array(np.array(shift, dtype=np.float32), "shift"),
    ]
    nodes = [helper.make_node("Mul", ["x", "scale"], ["z"]), helper.make_node("Add", ["z", "shift"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


MODELS = [
    ("fp32", "fp32", affine([1, 1, 1, 1], [0, 0, 0, 0])),
    ("near", "fp16", affine([1.01, 0.99, 1, 1], [0, 0.02, 0, 0])),
    ("far", "int8", affine([1, -1, 0.5, 2], [0.3, 0, 0, -0.2])),
]


def make_batches() -> list[FeedBatch]:
    rng = np.random.default_rng(3)
    return [
        FeedBatch({"x": rng.normal(size=(n, 4)).astype(np.float32)}, rng.integers(0, 4, n)) for n in (3, 5, 2)
    ]


def side_by_side(batches: list[FeedBatch]) -> list[dict[str, float]]:
    """Each model's figures against the first, all sessions open over each batch in turn."""
    sessions = [ort.InferenceSession(m.SerializeToString()) for _, _, m in MODELS]
    outs = [[s.run(None, dict(b.feed))[0] for s in sessions] for b in batches]
    labels = np.concatenate([b.labels for b in batches])
    figures = []
    for i in range(len(MODELS)):
        ref = np.concatenate([o[0] for o in outs])
        got = np.concatenate([o[i] for o in outs])
        cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
        figures.append(
            {
                "accuracy": float((got.argmax(1) == labels).mean()),
                "max_abs": float(np.abs(got - ref).max()),
                "cosine_min": float(cos.min()),
                "cosine_mean": float(cos.mean()),
                "top1": float((got.argmax(1) == ref.argmax(1)).mean()),
            }
        )
    return figures


def test_figures_match_the_side_by_side_computation() -> None:
    batches = make_batches()
    expected = side_by_side(batches)
    report = evaluate(MODELS, iter(batches), SPEC, source="t")  # iterated once
    assert report.samples == 10 and report.labelled
    for variant, want in zip(report.variants, expected, strict=True):
        assert variant.accuracy == pytest.approx(want["accuracy"])
    assert report.reference.outputs == []
    for variant, want in zip(report.variants[1:], expected[1:], strict=True):
        (out,) = variant.outputs
        assert out.max_abs == pytest.approx(want["max_abs"], abs=1e-6)
        assert out.cosine_min == pytest.approx(want["cosine_min"], abs=1e-6)
        assert out.cosine_mean == pytest.approx(want["cosine_mean"], abs=1e-6)
        assert out.top1 == pytest.approx(want["top1"])
    assert report.variants[2].outputs[0].top1 < 1.0  # the far variant does disagree somewhere


def test_one_session_is_open_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    open_now: list[int] = [0]
    most: list[int] = [0]
    mem_patterns: list[bool] = []
    base = accuracy_module.OnnxModelRunner

    class Counting(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            open_now[0] += 1
            most[0] = max(most[0], open_now[0])
            mem_patterns.append(self._session.get_session_options().enable_mem_pattern)

        def _close(self) -> None:
            open_now[0] -= 1
            super()._close()

    monkeypatch.setattr(accuracy_module, "OnnxModelRunner", Counting)
    report = evaluate(MODELS, make_batches(), SPEC, source="t")
    assert len(report.variants) == 3
    assert most[0] == 1 and open_now[0] == 0
    assert mem_patterns == [False, False, False]  # no activation buffers planned and held


def test_progress_counts_up_to_the_samples_once() -> None:
    calls: list[int] = []

    def batches() -> Iterator[FeedBatch]:
        yield from make_batches()

    evaluate(MODELS, batches(), SPEC, source="t", progress=calls.append)
    assert calls == sorted(calls) and calls[-1] == 10
