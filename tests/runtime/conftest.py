from __future__ import annotations

from pathlib import Path

import pytest

from mmexport.runtime import Session
from runtime.onnx_models import write_tiny


@pytest.fixture(scope="package")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny two-input ONNX graph (``onnx_models.write_tiny``) with its manifest."""
    return write_tiny(tmp_path_factory.mktemp("runtime"))


@pytest.fixture(scope="package")
def session(tiny_path: Path) -> Session:
    """A Session on ``tiny_path``, shared by the package: tests must not close it."""
    return Session(tiny_path)
