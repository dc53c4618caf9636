from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

TINY_FILE = TESTS / "tiny_models.py"


@pytest.fixture
def tiny_ref() -> str:
    """``file.py:factory`` reference of the tiny three-modality model."""
    return f"{TINY_FILE}:tiny"


@pytest.fixture
def tiny_spec_file(tmp_path: Path) -> Path:
    from tiny_models import TINY_SPEC

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(TINY_SPEC))
    return path
