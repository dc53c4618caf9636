"""A fake ``tensorrt`` module per TensorRT version, limited to names the real bindings have.

``fake_tensorrt(version)`` assembles the builder side (``builder_api``) and the runtime side
(``runtime_api``) and refuses any public name that the real bindings of that version lack
(``real_names/<version>.txt``, written by ``../shared/tools/trt-api names <version>``). So a
test that passes against the fake cannot rely on an API that TensorRT 10.3 or 11.4 does not have.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType, SimpleNamespace

REAL_NAMES = Path(__file__).parent / "real_names"
VERSIONS = ("10.3.0", "11.4.0.106")


# Names the bindings have that `trt-api names` cannot list: the linker stored each one as the tail
# of a longer string (``Builder`` inside ``IExprBuilder``). Each is accepted only where that longer
# name is in the version's list; each was also found in the doc text (`trt-api doc NAME VERSION`).
FOLDED = {
    "Builder": "IExprBuilder",  # trt.Builder(logger)
    "Runtime": "IPluginV3OneRuntime",  # trt.Runtime(logger)
    "Logger": "ILogger",  # trt.Logger(min_severity)
    "ERROR": "INTERNAL_ERROR",  # ILogger.Severity.ERROR
    "INT8": "UINT8",  # DataType.INT8 (and BuilderFlag.INT8 in 10.x)
    "DLA": "can_run_on_DLA",  # DeviceType.DLA
    "num_errors": "get_num_errors",  # OnnxParser.num_errors
    "desc": "get_error_desc",  # ParserError.desc()
    "code": "get_error_code",  # ParserError.code()
    "name": "get_tensor_name",  # ITensor.name, ILayer.name
    "shape": "get_shape",  # ITensor.shape
    "dtype": "get_tensor_dtype",  # ITensor.dtype
    "type": "default_device_type",  # ILayer.type
    "serialize": "plugins_to_serialize",  # ITimingCache.serialize(), ICudaEngine.serialize()
    "num_outputs": "get_num_outputs",  # INetworkDefinition.num_outputs (11.x)
    # TensorIOMode.INPUT / OUTPUT: no doc text names them; NVIDIA's samples compare
    # get_tensor_mode(name) == trt.TensorIOMode.INPUT.
    "INPUT": "CONDITIONAL_INPUT",
    "OUTPUT": "LOOP_OUTPUT",
}


@cache
def real_names(version: str) -> frozenset[str]:
    lines = (REAL_NAMES / f"{version}.txt").read_text().splitlines()
    listed = frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    return listed | {name for name, host in FOLDED.items() if host in listed}


def public_names(module: ModuleType) -> set[str]:
    """Every public name a caller can reach: module attributes and their classes' members."""
    names: set[str] = set()
    for name, value in vars(module).items():
        if name.startswith("_") or name in FAKE_ONLY:
            continue
        names.add(name)
        if isinstance(value, type):
            names.update(n for n in vars(value) if not n.startswith("_"))
    return names


# Test helpers that live on the fake module but are not part of the TensorRT API.
FAKE_ONLY = {"fake", "calls"}


def check_names(module: ModuleType, version: str) -> None:
    unknown = sorted(public_names(module) - real_names(version))
    if unknown:
        raise AssertionError(f"fake tensorrt {version} exposes names the real bindings lack: {unknown}")


def fake_tensorrt(version: str) -> ModuleType:
    """A new fake module for ``version`` (one of VERSIONS)."""
    from . import builder_api, runtime_api

    module = ModuleType("tensorrt")
    module.__version__ = version
    module.calls = []  # (what, details) recorded by the fakes, for assertions
    module.fake = SimpleNamespace(no_gpu=False)  # test controls; no_gpu: Builder/Runtime fail
    for part in (builder_api, runtime_api):
        part.install(module, version)
    check_names(module, version)
    return module


def is_fake(module: ModuleType) -> bool:
    """A fake from here (with ``calls`` and ``fake`` controls), not the real ``tensorrt``."""
    return hasattr(module, "fake") and hasattr(module, "calls")
