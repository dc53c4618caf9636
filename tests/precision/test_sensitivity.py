"""Branches come from the graph; the budget keeps the costly branch and re-quantizes what it can."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mmexport.core.spec import ModelSpec
from mmexport.precision.collect import collect_stats
from mmexport.precision.sensitivity import branch_costs, branches, fit_budget

SPEC = ModelSpec.from_dict(
    {
        "inputs": [
            {"name": "a", "modality": "sensor", "dtype": "float32", "shape": ["n", 4]},
            {"name": "b", "modality": "audio", "dtype": "float32", "shape": ["n", 4]},
        ],
        "outputs": [{"name": "logits", "labels": ["x", "y", "z"]}],
        "dims": {"n": {"min": 1, "opt": 8, "max": 64}},
    }
)


def two_branch_model() -> onnx.ModelProto:
    """a -> MatMul -> ya; b -> MatMul (mm_b1) -> MatMul (mm_b2) -> yb; logits = ya + yb."""
    rng = np.random.default_rng(0)
    weights = {
        "wa": rng.normal(size=(4, 3)),
        "wb1": rng.normal(size=(4, 4)),
        "wb2": rng.normal(size=(4, 3)) * 3,
    }
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["a", "wa"], ["ya"], name="mm_a"),
            helper.make_node("MatMul", ["b", "wb1"], ["hb"], name="mm_b1"),
            helper.make_node("MatMul", ["hb", "wb2"], ["yb"], name="mm_b2"),
            helper.make_node("Add", ["ya", "yb"], ["logits"], name="fuse"),
        ],
        "two_branches",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 4]) for n in ("a", "b")],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3])],
        [numpy_helper.from_array(w.astype(np.float32), n) for n, w in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def batches():
    rng = np.random.default_rng(1)
    feeds = [{k: rng.normal(size=(64, 4)).astype(np.float32) for k in ("a", "b")} for _ in range(4)]

    class Batch:
        def __init__(self, feed):
            self.feed, self.labels = feed, None

    return lambda: [Batch(f) for f in feeds]


def test_branches_follow_the_inputs_that_reach_each_node() -> None:
    assert branches(two_branch_model(), SPEC) == {"sensor": ["mm_a"], "audio": ["mm_b1", "mm_b2"]}


def test_budget_keeps_the_costly_branch_then_requantizes_its_harmless_nodes() -> None:
    model = two_branch_model()
    factory = batches()
    stats, _ = collect_stats(model, [b.feed for b in factory()])
    amax = {name: s.amax for name, s in stats.items()}
    amax["b"] = 1e6  # a range so wide that INT8 rounds input b to zero: mm_b1 must stay FP32
    costs, _ = branch_costs(model, amax, SPEC, factory, source="test")
    assert costs[0].branch == "audio"
    assert costs[0].drop_points is not None and costs[0].drop_points > 10
    result = fit_budget(model, amax, SPEC, factory, costs, 3.0, source="test")
    assert result.met and result.kept_fp32 == ["audio"]
    assert result.requantized == ["mm_b2"]
    assert sorted(result.quantized_nodes) == ["mm_a", "mm_b2"]
    assert result.drop_points is not None and result.drop_points <= 3.0
    tight = fit_budget(model, amax, SPEC, factory, costs, 1.0, source="test")
    assert tight.met and tight.requantized == [] and tight.quantized_nodes == ["mm_a"]
