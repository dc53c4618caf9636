"""``TorchRunner``: the eager model under the runner contract, the parity gate's reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmexport.core.errors import InputError
from mmexport.core.spec import ModelSpec
from mmexport.export.parity import ParityConfig, parity_rows
from mmexport.export.torch_runner import TorchRunner
from mmexport.runtime import Capability, Runner
from tiny_models import TINY_SPEC, tiny


class Counting(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny()
        self.calls = 0

    def forward(self, image, tokens, imu):
        self.calls += 1
        return {"logits": self.inner(image, tokens, imu)}


@pytest.mark.parametrize(
    "bad",
    [
        lambda f: {k: v for k, v in f.items() if k != "imu"},  # an input missing
        lambda f: {**f, "tokens": f["tokens"].astype(np.float32)},  # float where int64 is declared
        lambda f: {**f, "imu": np.zeros((2, 10, 7), np.float32)},  # a fixed axis wrong
        lambda f: {**f, "image": np.zeros((2, 3, 64, 16), np.float32)},  # height past its max
    ],
)
def test_a_bad_feed_is_refused_before_the_model_runs(bad):
    spec = ModelSpec.from_dict(TINY_SPEC)
    module = Counting()
    runner = TorchRunner(module, spec)
    with pytest.raises(InputError):
        runner.run(bad(spec.sample_feed(spec.point("opt"))))
    assert module.calls == 0


def test_outputs_are_named_by_the_spec_and_model_errors_propagate():
    spec = ModelSpec.from_dict(TINY_SPEC)
    module = Counting()
    with TorchRunner(module, spec) as runner:
        assert isinstance(runner, Runner) and runner.capabilities == frozenset()
        assert Capability.TIMINGS not in runner.capabilities and runner.timings() is None
        out = runner.run(spec.sample_feed(spec.point("opt")))
        assert list(out) == ["logits"] and out["logits"].shape == (2, 5) and module.calls == 1
        module.inner = None  # the model itself fails: its error, not ours, reaches the caller
        with pytest.raises(TypeError):
            runner.run(spec.sample_feed(spec.point("opt")))


def test_parity_rows_come_from_compare():
    spec = ModelSpec.from_dict(TINY_SPEC)
    expected = {"logits": np.array([[1.0, 2.0]], np.float32)}
    rows = parity_rows(
        "opt", {}, expected, {"logits": np.array([[1.0, 2.01]], np.float32)}, spec, ParityConfig()
    )
    assert [(r.output, r.passed, r.atol, r.rtol, r.error) for r in rows] == [
        ("logits", False, 1e-4, 1e-3, None)
    ]
    assert rows[0].max_abs == pytest.approx(0.01, rel=1e-4) and rows[0].max_rel == pytest.approx(
        0.005, rel=1e-4
    )
    shape = parity_rows("opt", {}, expected, {"logits": np.zeros((1, 3), np.float32)}, spec, ParityConfig())
    assert shape[0].error == "shape [1, 3] != torch [1, 2]" and shape[0].max_abs == float("inf")
