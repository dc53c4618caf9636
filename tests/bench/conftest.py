from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from mmexport.bench import BenchConfig, BenchReport, benchmark, build_cases
from runtime.onnx_models import write_tiny

FAST = BenchConfig(warmup_s=0.01, duration_s=0.05, min_iterations=5)


@pytest.fixture(scope="package")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two copies of the tiny two-input ONNX graph (``a.onnx``, ``b.onnx``), each with its manifest."""
    folder = tmp_path_factory.mktemp("bench")
    return write_tiny(folder, "a.onnx"), write_tiny(folder, "b.onnx")


@pytest.fixture(scope="package")
def report(artifacts: tuple[Path, Path]) -> BenchReport:
    """A short benchmark of ``artifacts`` (sweep, batches 1 and 4) that the render tests read."""
    return benchmark(list(artifacts), build_cases(sweep=True, batches=[1, 4]), FAST)


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing matplotlib fails, as where the ``plot`` extra is not installed."""
    real_import = builtins.__import__

    def refuse(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", refuse)
