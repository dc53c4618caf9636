"""Fixtures shared by every test folder: the tiny model's reference and spec file, and the
built-in models exported once per test session.

``builtin_export(name)``, ``fusion_export`` and ``seed_export`` are read-only: many tests read
and run the same files, so a test that modifies, moves or deletes one must copy it first
(``shutil.copy`` the ONNX and its ``.json`` manifest into ``tmp_path``).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from filelock import FileLock

if TYPE_CHECKING:
    from mmexport.export.stage import ToOnnxResult

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

TINY_FILE = TESTS / "tiny_models.py"


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


def export_builtin_once(name: str, tmp_path_factory: pytest.TempPathFactory) -> ToOnnxResult:
    """``to_onnx(name)`` with default settings, made once per run even across pytest-xdist workers:
    the first worker exports under a file lock in the folder they share, the others read its result
    (the recipe of pytest-xdist's docs, "Making session-scoped fixtures execute only once")."""
    from mmexport.export import to_onnx

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / f"builtin-{name}"
    result_file = folder / "result.pickle"
    with FileLock(str(root / f"builtin-{name}.lock")):
        if result_file.is_file():
            result: ToOnnxResult = pickle.loads(result_file.read_bytes())
            return result
        result = to_onnx(name, folder / f"{name}.onnx")
        result_file.write_bytes(pickle.dumps(result))
    return result


@pytest.fixture(scope="session")
def builtin_export(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], ToOnnxResult]:
    """``builtin_export(name)``: the built-in model exported with default settings (dynamo, full
    spec, default parity gate), once per test session. Read-only: copy the files before modifying."""
    made: dict[str, ToOnnxResult] = {}

    def export(name: str) -> ToOnnxResult:
        if name not in made:
            made[name] = export_builtin_once(name, tmp_path_factory)
        return made[name]

    return export


@pytest.fixture(scope="session")
def fusion_export(builtin_export: Callable[[str], ToOnnxResult]) -> ToOnnxResult:
    """``builtin_export("fusion")``, the default model. Read-only: copy the files before modifying."""
    return builtin_export("fusion")


@pytest.fixture(scope="session")
def seed_export(builtin_export: Callable[[str], ToOnnxResult]) -> ToOnnxResult:
    """``builtin_export("seed")``. Read-only: copy the files before modifying them."""
    return builtin_export("seed")
