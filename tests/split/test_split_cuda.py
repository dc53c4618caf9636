"""SplitSession on CUDA (onnxruntime's CUDA EP faked: tests/runtime/fake_cuda_ort.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mmexport.core.errors import BackendError
from mmexport.split import SplitSession
from runtime.fake_cuda_ort import FakeOrt, install


def test_parts_run_in_turn_on_cuda_and_on_the_pool_on_the_cpu(fusion_split, monkeypatch):
    with SplitSession(fusion_split.folder) as cpu:
        assert cpu.describe()["parallel"] is True
        feeds = cpu.spec.sample_feed(cpu.spec.point("opt"), seed=0)
        expected = cpu.run(feeds)
    fake = install(monkeypatch, FakeOrt())
    with SplitSession(fusion_split.folder, device="cuda") as gpu:
        assert gpu.describe()["parallel"] is False
        out = gpu.run(feeds)
        assert len(fake.sessions) == len(gpu.parts)
    for name, value in expected.items():
        np.testing.assert_allclose(out[name], value, rtol=1e-5, atol=1e-5)
    with SplitSession(fusion_split.folder, device="cuda", parallel=True) as asked:
        assert asked.describe()["parallel"] is True  # an explicit choice is kept


def test_cuda_graph_refuses_the_fusion_part_by_its_control_flow(fusion_split, monkeypatch):
    """The fuse part stands in for absent modalities with an If: no CUDA graph can hold it."""
    install(monkeypatch, FakeOrt())
    with pytest.raises(BackendError, match=r"cuda_graph cannot capture fuse.onnx: it has control flow \(If "):
        SplitSession(fusion_split.folder, device="cuda", options={"cuda_graph": True})
