"""Backends by name, imported on first use, so that callers never change when one is added.

A native TensorRT backend registers itself the same way as onnxruntime's::

    register_backend("tensorrt", "mmexport.runtime.backends.tensorrt.runner:TrtRunner",
                     suffixes=(".engine", ".plan"), kinds=("engine",))
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from mmexport.core.errors import BackendError
from mmexport.runtime.backends.base import Backend


@dataclass(frozen=True)
class BackendEntry:
    """Where a backend class lives (``module:Class``) and which artifacts it reads."""

    name: str
    target: str
    suffixes: tuple[str, ...]
    kinds: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


_REGISTRY: dict[str, BackendEntry] = {}


def register_backend(
    name: str,
    target: str,
    *,
    suffixes: tuple[str, ...],
    kinds: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
) -> None:
    """Make ``name`` (and ``aliases``) usable as ``Session(backend=...)`` and for ``auto``."""
    _REGISTRY[name] = BackendEntry(name, target, suffixes, kinds, aliases)


def backend_names() -> list[str]:
    return list(_REGISTRY)


def find_backend(name: str, path: Path, manifest_kind: str | None) -> BackendEntry:
    """The entry for ``name``, or for ``"auto"`` the one that reads this manifest kind or suffix."""
    if name != "auto":
        for entry in _REGISTRY.values():
            if name == entry.name or name in entry.aliases:
                return entry
        raise BackendError(name, "is not a runtime backend", hint=f"known: auto, {', '.join(_REGISTRY)}")
    for entry in _REGISTRY.values():
        if manifest_kind is not None and manifest_kind in entry.kinds:
            return entry
    for entry in _REGISTRY.values():
        if path.suffix.lower() in entry.suffixes:
            return entry
    readable = sorted({s for e in _REGISTRY.values() for s in e.suffixes})
    raise BackendError(
        "auto", f"no runtime backend reads {path.name!r}", hint=f"readable: {', '.join(readable)}"
    )


def load_backend_class(entry: BackendEntry) -> type[Backend]:
    module_name, _, class_name = entry.target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls


register_backend(
    "onnxrt",
    "mmexport.runtime.backends.onnxrt.runner:OnnxrtRunner",
    suffixes=(".onnx",),
    kinds=("onnx",),
    aliases=("onnxruntime",),
)
register_backend(
    "tensorrt",
    "mmexport.runtime.backends.tensorrt.runner:TrtRunner",
    suffixes=(".engine", ".plan"),
    kinds=("engine",),
    aliases=("trt",),
)
