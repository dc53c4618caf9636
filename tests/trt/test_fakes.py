from __future__ import annotations

import sys

import pytest

from .fakes import VERSIONS, check_names, class_entries, cuda_runtime, fake_tensorrt, real_members, real_names
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


def test_a_real_name_on_the_wrong_class_is_refused() -> None:
    """``set_input_shape`` is a real name, of IExecutionContext, not of Runtime."""
    module = fake_tensorrt("10.3.0")
    module.Runtime.set_input_shape = lambda self, name, shape: True
    with pytest.raises(AssertionError, match=r"Runtime\.set_input_shape"):
        check_names(module, "10.3.0")


@pytest.mark.parametrize("version", VERSIONS)
def test_fake_objects_refuse_attributes_their_real_class_lacks(version: str) -> None:
    module = fake_tensorrt(version)
    runtime = module.Runtime(module.Logger())
    runtime.DLA_core = 0  # Runtime has DLA_core (an engine takes the core selected at load)
    with pytest.raises(AttributeError, match=r"'tensorrt\.Runtime' object has no attribute 'dla_core'"):
        runtime.dla_core = 1
    config = module.Builder(module.Logger()).create_builder_config()
    if version.startswith("10."):
        config.int8_calibrator = None
    else:
        with pytest.raises(AttributeError, match="int8_calibrator"):  # removed in TensorRT 11
            config.int8_calibrator = None


def test_members_follow_each_version() -> None:
    assert "FP16" in real_members("10.3.0")["BuilderFlag"]
    assert "FP16" not in real_members("11.4.0.106")["BuilderFlag"]
    assert "SAME_COMPUTE_CAPABILITY" not in real_members("10.3.0")["HardwareCompatibilityLevel"]
    assert "DLA_core" in real_members("10.3.0")["Runtime"] & real_members("11.4.0.106")["Runtime"]


def test_every_class_entry_holds_for_some_version() -> None:
    """A misspelt line in classes.txt would hold for no version: it must not stay unnoticed."""
    held = {
        (owner, member) for v in VERSIONS for owner, members in real_members(v).items() for member in members
    }
    stray = [f"{owner}.{member}" for owner, member, _ in class_entries() if (owner, member) not in held]
    assert stray == []


def test_fake_cuda_exposes_only_real_cuda_python_names() -> None:
    module, _state = cuda_runtime.install()
    cuda_runtime.check_names(module)
    assert "cudaStreamWaitEvent" in cuda_runtime.real_names()
    module.cudaStreamSync = lambda stream: (0,)  # not a cuda-python name
    with pytest.raises(AssertionError, match="cudaStreamSync"):
        cuda_runtime.check_names(module)


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
