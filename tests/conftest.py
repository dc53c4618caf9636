"""Fixtures shared by every test folder: the tiny model's reference and spec file, ``run_once``
for what every worker would otherwise make again, and the built-in models exported once per run.

What ``run_once`` makes (``builtin_export(name)``, ``fusion_export``, ``seed_export``, the split
and precision exports) is read-only: many tests read and run the same files, so a test that
modifies, moves or deletes one must copy it first (the ONNX and its ``.json`` manifest).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pytest
from filelock import FileLock

if TYPE_CHECKING:
    from mmexport.export.stage import ToOnnxResult

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

TINY_FILE = TESTS / "tiny_models.py"
T = TypeVar("T")


@pytest.fixture
def tiny_ref() -> str:
    """``file.py:factory`` reference of the tiny three-modality model."""
    return f"{TINY_FILE}:tiny"


@pytest.fixture
def tiny_spec_file(tmp_path: Path) -> Path:
    """The tiny three-modality model's spec, written as a spec file."""
    from tiny_models import TINY_SPEC

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(TINY_SPEC))
    return path


class RunOnce(Protocol):
    """The type of the ``run_once`` fixture: ``run_once(key, make) -> make(folder)``, made once."""

    def __call__(self, key: str, make: Callable[[Path], T]) -> T: ...


@pytest.fixture(scope="session")
def run_once(tmp_path_factory: pytest.TempPathFactory) -> RunOnce:
    """``run_once(key, make)``: ``make(folder)``'s result, made once per test run even across
    pytest-xdist workers: the first worker to ask makes it under a file lock in the folder the
    workers share and pickles it, the others unpickle it (the recipe of pytest-xdist's docs,
    "Making session-scoped fixtures execute only once"). What ``make`` writes is read-only."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    made: dict[str, Any] = {}

    def once(key: str, make: Callable[[Path], T]) -> T:
        if key not in made:
            folder, result_file = root / key, root / key / "result.pickle"
            with FileLock(str(root / f"{key}.lock")):
                if result_file.is_file():
                    made[key] = pickle.loads(result_file.read_bytes())
                else:
                    folder.mkdir(exist_ok=True)
                    made[key] = make(folder)
                    result_file.write_bytes(pickle.dumps(made[key]))
        result: T = made[key]
        return result

    return once


@pytest.fixture(scope="session")
def builtin_export(run_once: RunOnce) -> Callable[[str], ToOnnxResult]:
    """``builtin_export(name)``: the built-in model exported with default settings (dynamo, full
    spec, default parity gate), once per test run. Read-only: copy the files before modifying."""
    from mmexport.export import to_onnx

    def export(name: str) -> ToOnnxResult:
        return run_once(f"builtin-{name}", lambda folder: to_onnx(name, folder / f"{name}.onnx"))

    return export


@pytest.fixture(scope="session")
def fusion_export(builtin_export: Callable[[str], ToOnnxResult]) -> ToOnnxResult:
    """``builtin_export("fusion")``, the default model. Read-only: copy the files before modifying."""
    return builtin_export("fusion")


@pytest.fixture(scope="session")
def seed_export(builtin_export: Callable[[str], ToOnnxResult]) -> ToOnnxResult:
    """``builtin_export("seed")``. Read-only: copy the files before modifying them."""
    return builtin_export("seed")
