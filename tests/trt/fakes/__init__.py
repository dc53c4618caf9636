"""A fake ``tensorrt`` module per TensorRT version, limited to what the real bindings have, by class.

``fake_tensorrt(version)`` assembles the builder side (``builder_api``) and the runtime side
(``runtime_api``) and refuses any module attribute or class member that the real bindings of that
version lack on that class: ``real_names/classes.txt`` says which class owns each name, and a line
holds for a version when its names are in ``real_names/<version>.txt`` (written by
``../shared/tools/trt-api names <version>``). Instances of the fake classes refuse attributes their
real class lacks, as pybind11 objects do (``AttributeError``), so ``runtime.DLA_core = 1`` works
and a misspelt ``runtime.dla_core = 1`` fails as it would on TensorRT. So a test that passes
against the fake cannot rely on an API that TensorRT 10.3 or 11.4 does not have.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from functools import cache
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

REAL_NAMES = Path(__file__).parent / "real_names"
VERSIONS = ("10.3.0", "11.4.0.106")
MODULE = "tensorrt"  # the owner written for module attributes in classes.txt
FAKE_ONLY = {"fake", "calls"}  # test controls on the fake module, not part of the TensorRT API


@cache
def real_names(version: str) -> frozenset[str]:
    """Every identifier of the real bindings of ``version`` (one flat list)."""
    lines = (REAL_NAMES / f"{version}.txt").read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


@cache
def class_entries() -> tuple[tuple[str, str, str | None], ...]:
    """``(class, member, longer name it is stored in or None)`` per line of classes.txt."""
    entries = []
    for line in (REAL_NAMES / "classes.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        qualified, *host = line.split()
        owner, member = qualified.split(".", 1)
        entries.append((owner, member, host[0].removeprefix("~") if host else None))
    return tuple(entries)


def _listed(name: str, host: str | None, names: frozenset[str]) -> bool:
    if host is not None:
        return host in names and host.endswith(name)
    return name in names


@cache
def real_members(version: str) -> dict[str, frozenset[str]]:
    """Class (``tensorrt`` for the module) -> the members the real bindings of ``version`` have."""
    names = real_names(version)
    hosts = {member: host for owner, member, host in class_entries() if owner == MODULE}
    members: dict[str, set[str]] = defaultdict(set)
    for owner, member, host in class_entries():
        owner_listed = owner == MODULE or _listed(owner, hosts.get(owner), names)
        if owner_listed and _listed(member, host, names):
            members[owner].add(member)
    return {owner: frozenset(found) for owner, found in members.items()}


def class_members(cls: type) -> set[str]:
    """The public names a caller reaches on a fake class: enum members, or what the class and its
    fake bases define (not what ``object`` or ``bytes`` give)."""
    if issubclass(cls, enum.Enum):
        return set(cls.__members__)
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__ in ("builtins", "enum"):
            continue
        names.update(n for n in vars(klass) if not n.startswith("_"))
    return names


def exposed(module: ModuleType) -> dict[str, set[str]]:
    """Owner -> the public names the fake exposes (module attributes under ``tensorrt``)."""
    found: dict[str, set[str]] = {MODULE: set()}
    for name, value in vars(module).items():
        if name.startswith("_") or name in FAKE_ONLY:
            continue
        found[MODULE].add(name)
        if isinstance(value, type):
            found[name] = class_members(value)
    return found


def unknown_names(module: ModuleType, version: str) -> list[str]:
    real = real_members(version)
    return sorted(
        f"{owner}.{member}"
        for owner, members in exposed(module).items()
        for member in members
        if member not in real.get(owner, frozenset())
    )


def check_names(module: ModuleType, version: str) -> None:
    unknown = unknown_names(module, version)
    if unknown:
        raise AssertionError(f"fake tensorrt {version} exposes names the real bindings lack: {unknown}")


def _guarded_setattr(self: Any, name: str, value: Any) -> None:
    """Setting an attribute the real class lacks raises, as on a pybind11 object (subclasses
    defined by the code under test, like calibrators and loggers, have a ``__dict__`` and accept any)."""
    allowed = type(self).__dict__.get("_real_members")
    if allowed is not None and not name.startswith("_") and name not in allowed:
        raise AttributeError(f"'tensorrt.{type(self).__name__}' object has no attribute '{name}'")
    object.__setattr__(self, name, value)


def guard_instances(module: ModuleType, version: str) -> None:
    real = real_members(version)
    for name, value in vars(module).items():
        if isinstance(value, type) and not issubclass(value, enum.Enum) and name in real:
            value._real_members = real[name]
            value.__setattr__ = _guarded_setattr


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
    guard_instances(module, version)
    return module


def is_fake(module: ModuleType) -> bool:
    """A fake from here (with ``calls`` and ``fake`` controls), not the real ``tensorrt``."""
    return hasattr(module, "fake") and hasattr(module, "calls")
