"""A fake ``tensorrt`` module per TensorRT version, limited to names the real bindings have.

``fake_tensorrt(version)`` assembles the builder side (``builder_api``) and the runtime side
(``runtime_api``) and refuses any public name that the real bindings of that version lack
(``real_names/<version>.txt``, written by ``../shared/tools/trt-api names <version>``). So a
test that passes against the fake cannot rely on an API that TensorRT 10.3 or 11.4 does not have.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType

REAL_NAMES = Path(__file__).parent / "real_names"
VERSIONS = ("10.3.0", "11.4.0.106")


@cache
def real_names(version: str) -> frozenset[str]:
    lines = (REAL_NAMES / f"{version}.txt").read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


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
    for part in (builder_api, runtime_api):
        part.install(module, version)
    check_names(module, version)
    return module
