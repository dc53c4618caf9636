from __future__ import annotations

import sys

import pytest

from .fakes import VERSIONS, check_names, fake_tensorrt, real_names
from .real import real_tensorrt


@pytest.mark.parametrize("version", VERSIONS)
def test_fakes_only_expose_real_names(version: str) -> None:
    module = fake_tensorrt(version)
    check_names(module, version)
    assert module.__version__ == version


def test_name_lists_differ_where_tensorrt_11_removed_apis() -> None:
    assert "IInt8EntropyCalibrator2" in real_names("10.3.0")
    assert "IInt8EntropyCalibrator2" not in real_names("11.4.0.106")
    assert "execute_async_v3" in real_names("10.3.0") & real_names("11.4.0.106")


def test_a_name_the_bindings_lack_is_refused() -> None:
    module = fake_tensorrt("11.4.0.106")
    module.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (), {})
    with pytest.raises(AssertionError, match="IInt8EntropyCalibrator2"):
        check_names(module, "11.4.0.106")


def test_real_tensorrt_skips_where_tensorrt_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed TensorRT without a usable GPU: the ``trt`` tests skip with the reason, not error."""
    module = fake_tensorrt("10.3.0")
    module.fake.no_gpu = True
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    with pytest.raises(pytest.skip.Exception, match=r"cannot start \(no usable GPU"):
        real_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        real_tensorrt()
