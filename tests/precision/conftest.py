from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from precision.precision_data import LABELS

if TYPE_CHECKING:
    from conftest import RunOnce

TESTS = Path(__file__).parents[1]


@pytest.fixture(scope="session")
def tiny_fp32_onnx(run_once: RunOnce) -> Path:
    """The tiny three-modality model (Conv, Embedding, GRU, Gemm) exported with a labelled output:
    an FP32 ONNX with its manifest, made once per run (read-only: copy it before modifying it)."""

    def export(folder: Path) -> Path:
        from mmexport.export import to_onnx
        from tiny_models import TINY_SPEC

        spec = copy.deepcopy(TINY_SPEC)
        spec["outputs"] = [{"name": "logits", "labels": LABELS}]
        spec_file = folder / "spec.json"
        spec_file.write_text(json.dumps(spec))
        return to_onnx(f"{TESTS / 'tiny_models.py'}:tiny", folder / "tiny.onnx", spec=spec_file).path

    return run_once("precision-tiny-fp32", export)
