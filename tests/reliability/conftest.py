"""Fixtures of the reliability suite; see ``budget.py`` for the fast and full parts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from reliability import budget
from runtime.onnx_models import write_tiny

if TYPE_CHECKING:
    from mmexport.export.stage import ToOnnxResult


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: the reliability suite (fuzzing, damaged files, interrupted runs, soak)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session", autouse=True)
def _write_stats() -> Iterator[None]:
    yield
    budget.write_stats()


@pytest.fixture(scope="session")
def tiny_graph_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny two-input ONNX (onnx.helper, milliseconds) with its manifest."""
    return write_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_graph_no_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same graph without a manifest: the spec comes from the graph, dims are unbounded."""
    return write_tiny(tmp_path_factory.mktemp("bare"), manifest=False)


@pytest.fixture(scope="session")
def default_onnx(fusion_export: ToOnnxResult) -> Path:
    """The default built-in model exported to ONNX (shared, read-only; the full run only asks for it)."""
    return fusion_export.path
