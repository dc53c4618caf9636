"""Architectures from other libraries export through a factory file and a spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmexport.export import to_onnx
from mmexport.export.onnx_export import dim_values

pytest.importorskip("transformers", reason="transformers is in the 'test' extra")

HERE = Path(__file__).parent


@pytest.mark.slow
def test_transformers_clip_exports_with_dynamic_batch_and_text_length(tmp_path):
    result = to_onnx(f"{HERE / 'clip_factory.py'}:build", tmp_path / "clip.onnx")
    assert result.parity.passed
    dims = dim_values(result.path)
    assert dims["input_ids"] == ["batch", "seq"]
    assert dims["pixel_values"] == ["batch", 3, 32, 32]
    assert {r.output for r in result.parity.rows} == {"image_embeds", "text_embeds"}
