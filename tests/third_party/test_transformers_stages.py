"""transformers models exported as they are (no wrapper module): CLIP with separate image and
text batches, Whisper with a constant ``use_cache`` argument, through to-onnx, fp16, calibrate
and accuracy. Tiny configs, random weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from mmexport import accuracy, calibrate, to_fp16
from mmexport.core.spec import ModelSpec
from mmexport.export import ParityConfig, ToOnnxResult, to_onnx
from mmexport.export.onnx_export import dim_values
from mmexport.precision.accuracy import AccuracyReport
from mmexport.precision.stages import CalibrationConfig, Fp16Config

transformers = pytest.importorskip("transformers", reason="transformers is in the 'test' extra")

CLIP_SPEC: dict[str, Any] = {
    "inputs": [
        {
            "name": "input_ids",
            "modality": "text",
            "dtype": "int64",
            "shape": ["texts", "seq"],
            "range": [0, 99],
        },
        {
            "name": "attention_mask",
            "modality": "text",
            "dtype": "int64",
            "shape": ["texts", "seq"],
            "range": [1, 2],
        },
        {"name": "pixel_values", "modality": "image", "dtype": "float32", "shape": ["images", 3, 32, 32]},
    ],
    "outputs": ["logits_per_image", "text_embeds", "image_embeds"],
    "dims": {
        "texts": {"min": 1, "opt": 4, "max": 8},
        "images": {"min": 1, "opt": 2, "max": 8},
        "seq": {"min": 2, "opt": 7, "max": 16},
    },
}

WHISPER_SPEC: dict[str, Any] = {
    "inputs": [
        {"name": "input_features", "modality": "audio", "dtype": "float32", "shape": ["batch", 16, 64]},
        {
            "name": "decoder_input_ids",
            "modality": "text",
            "dtype": "int64",
            "shape": ["batch", "tokens"],
            "range": [0, 99],
        },
    ],
    "outputs": ["logits"],
    "dims": {"batch": {"min": 1, "opt": 2, "max": 4}, "tokens": {"min": 1, "opt": 4, "max": 8}},
    "call_kwargs": {"use_cache": False},
}


def tiny_clip() -> torch.nn.Module:
    torch.manual_seed(0)
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = transformers.CLIPConfig(
        text_config={"vocab_size": 99, "max_position_embeddings": 16, **layers},
        vision_config={"image_size": 32, "patch_size": 8, **layers},
        projection_dim=16,
    )
    return transformers.CLIPModel(config).eval()


def tiny_whisper() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.WhisperConfig(
        vocab_size=99,
        num_mel_bins=16,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=32,
        max_target_positions=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    return transformers.WhisperForConditionalGeneration(config).eval()


def run_every_stage(
    model: torch.nn.Module, spec: ModelSpec, tmp: Path
) -> tuple[ToOnnxResult, AccuracyReport]:
    """Every stage on random feeds from the spec (its opt, min and random points: image and text
    batches of different sizes for CLIP)."""
    exported = to_onnx(model, tmp / "m.onnx", spec=spec, parity=ParityConfig(random_points=1))
    assert exported.parity.passed
    fp16 = to_fp16(exported.path, tmp / "m.fp16.onnx", config=Fp16Config(samples=8), eval_samples=8)
    int8 = calibrate(exported.path, tmp / "m.int8.onnx", config=CalibrationConfig(samples=8), eval_samples=8)
    report = accuracy([exported.path, fp16.path, int8.path], samples=12)
    return exported, report


@pytest.mark.slow
def test_clip_with_separate_image_and_text_batches_goes_through_every_stage(tmp_path):
    spec = ModelSpec.from_dict(CLIP_SPEC)
    exported, report = run_every_stage(tiny_clip(), spec, tmp_path)
    dims = dim_values(exported.path)
    assert dims["input_ids"] == ["texts", "seq"] and dims["pixel_values"] == ["images", 3, 32, 32]
    assert report.reference_nonfinite == 0
    for variant in report.variants[1:]:
        assert [o.output for o in variant.outputs] == spec.output_names
        assert variant.worst_cosine() > 0.9, variant


@pytest.mark.slow
def test_whisper_with_use_cache_false_goes_through_every_stage(tmp_path):
    spec = ModelSpec.from_dict(WHISPER_SPEC)
    exported, report = run_every_stage(tiny_whisper(), spec, tmp_path)
    assert exported.manifest.spec.call_kwargs == {"use_cache": False}
    assert dim_values(exported.path)["decoder_input_ids"] == ["batch", "tokens"]
    for variant in report.variants[1:]:
        assert variant.worst_cosine() > 0.9, variant
