from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mmexport.runtime import Session

from .toy_model import write_toy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))


@pytest.fixture(scope="package")
def toy_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy(tmp_path_factory.mktemp("examples"))


@pytest.fixture(scope="package")
def toy_session(toy_path: Path) -> Session:
    return Session(toy_path, spin=False)
