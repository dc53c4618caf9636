"""Fake tensorrt: the runtime side. See tests/trt/fakes/__init__.py."""

from __future__ import annotations

from types import ModuleType


def install(module: ModuleType, version: str) -> None:
    """Add this side's classes and enums to the fake module for version."""
