"""Fixtures: the fake ``tensorrt`` of each generation, a fake cuda-python, and real TensorRT.

``fake_trt`` is the two fakes only, for tests that assert on what the fakes record
(``module.calls``) or use their controls (``module.fake``). ``any_trt`` adds the real TensorRT
as a third parameter marked ``trt``: the same test runs against it where TensorRT and a GPU are
present (``pytest -m trt``) and skips with a reason where not.
"""

from __future__ import annotations

import sys
from types import ModuleType

import pytest

from .fakes import VERSIONS, cuda_runtime, fake_tensorrt
from .real import real_tensorrt

REAL = "real"


@pytest.fixture(name="fake_cuda")
def fake_cuda_fixture(monkeypatch: pytest.MonkeyPatch) -> cuda_runtime.FakeCudaState:
    """A fake ``cuda.bindings.runtime`` installed for import, on an x86_64 Linux machine."""
    module, state = cuda_runtime.install()
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", module)
    monkeypatch.setattr("mmexport.runtime.backends.tensorrt.runner.machine_platform", lambda: "linux-x86_64")
    return state


def install_fake(version: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = fake_tensorrt(version)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


@pytest.fixture(params=VERSIONS, ids=lambda v: f"trt{v.split('.')[0]}")
def fake_trt(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, fake_cuda: cuda_runtime.FakeCudaState
) -> ModuleType:
    """A fake ``tensorrt`` of each generation (10.3 and 11.4), installed as ``import tensorrt``,
    on a machine with the fake cuda-python's GPU (builds record its name and compute capability)."""
    return install_fake(request.param, monkeypatch)


@pytest.fixture(
    params=[*VERSIONS, pytest.param(REAL, marks=pytest.mark.trt)],
    ids=lambda v: v if v == REAL else f"trt{v.split('.')[0]}",
)
def any_trt(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Each fake (with the fake cuda-python) and the real TensorRT (marked ``trt``; skipped where
    TensorRT, a usable GPU or cuda-python is missing)."""
    if request.param == REAL:
        return real_tensorrt()
    request.getfixturevalue("fake_cuda")
    return install_fake(request.param, monkeypatch)


@pytest.fixture
def real_trt() -> ModuleType:
    """The installed TensorRT (tests marked ``trt``); skipped where there is none or no usable GPU."""
    return real_tensorrt()
