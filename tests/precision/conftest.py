from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from precision.precision_data import LABELS

TESTS = Path(__file__).parents[1]


@pytest.fixture(scope="session")
def tiny_fp32_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny three-modality model (Conv, Embedding, GRU, Gemm) exported with a labelled output."""
    from mmexport.export import to_onnx
    from tiny_models import TINY_SPEC

    folder = tmp_path_factory.mktemp("tiny")
    spec = copy.deepcopy(TINY_SPEC)
    spec["outputs"] = [{"name": "logits", "labels": LABELS}]
    spec_file = folder / "spec.json"
    spec_file.write_text(json.dumps(spec))
    return to_onnx(f"{TESTS / 'tiny_models.py'}:tiny", folder / "tiny.onnx", spec=spec_file).path
