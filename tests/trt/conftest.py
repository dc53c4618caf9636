from __future__ import annotations

import sys
from types import ModuleType

import pytest

from .fakes import VERSIONS, fake_tensorrt


@pytest.fixture(params=VERSIONS, ids=lambda v: f"trt{v.split('.')[0]}")
def fake_trt(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fake ``tensorrt`` of each generation (10.3 and 11.4), installed as ``import tensorrt``."""
    module = fake_tensorrt(request.param)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


@pytest.fixture
def real_trt() -> ModuleType:
    """The installed TensorRT (tests marked ``trt``); skipped where there is none."""
    return pytest.importorskip("tensorrt", reason="TensorRT is not installed on this machine")
