"""transformers models exported as they are (no wrapper module): CLIP with separate image and
text batches, Whisper with a constant ``use_cache`` argument, BERT with padded text and its
attention mask, through to-onnx, fp16, calibrate, accuracy and run; ViLT, which torch cannot
export, refused with the line of its model file. Tiny configs, random weights."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mmexport import accuracy, calibrate, to_fp16
from mmexport.cli.app import cli
from mmexport.core.errors import ExportError
from mmexport.core.spec import ModelSpec
from mmexport.export import ExportConfig, ParityConfig, ToOnnxResult, to_onnx
from mmexport.export.onnx_export import dim_values
from mmexport.export.torch_runner import torch_outputs
from mmexport.precision.accuracy import AccuracyReport
from mmexport.precision.stages import CalibrationConfig, Fp16Config
from mmexport.runtime import Session

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


TEXT = {"modality": "text", "dtype": "int64", "shape": ["batch", "seq"]}
BERT_SPEC: dict[str, Any] = {
    "inputs": [
        {"name": "input_ids", **TEXT, "range": [1, 99], "preprocess": {"kind": "tokens", "pad": 0}},
        {"name": "attention_mask", **TEXT, "mask_of": "input_ids"},
    ],
    "outputs": [{"name": "logits", "labels": ["negative", "neutral", "positive"]}],
    "dims": {"batch": {"min": 1, "opt": 2, "max": 4}, "seq": {"min": 2, "opt": 8, "max": 16}},
}

VILT_SPEC: dict[str, Any] = {
    "inputs": [
        {"name": "input_ids", **TEXT, "range": [1, 99]},
        {"name": "attention_mask", **TEXT, "mask_of": "input_ids"},
        {"name": "pixel_values", "modality": "image", "dtype": "float32", "shape": ["batch", 3, 32, 32]},
    ],
    "outputs": ["logits"],
    "dims": {"batch": {"min": 1, "opt": 2, "max": 4}, "seq": {"min": 2, "opt": 6, "max": 8}},
}


def tiny_bert() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=3,
    )
    return transformers.BertForSequenceClassification(config).eval()


def tiny_vilt() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.ViltConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        max_position_embeddings=8,
        num_labels=5,
    )
    return transformers.ViltForQuestionAnswering(config).eval()


@pytest.mark.slow
def test_bert_with_padded_text_and_its_mask_goes_through_every_stage(tmp_path):
    """The gate feeds rows padded to random lengths with the mask to match, so it checks the
    exported masking; a model that ignored the mask would differ on the padded rows."""
    spec = ModelSpec.from_dict(BERT_SPEC)
    model = tiny_bert()
    exported, report = run_every_stage(model, spec, tmp_path)
    assert exported.manifest.spec.input("attention_mask").mask_of == "input_ids"
    assert dim_values(exported.path)["attention_mask"] == ["batch", "seq"]
    for variant in report.variants[1:]:
        assert variant.worst_cosine() > 0.9, variant

    feed = spec.sample_feed(spec.point("max"), seed=7)
    assert 0 < feed["attention_mask"].sum() < feed["attention_mask"].size  # padded rows
    (expected,) = torch_outputs(model, feed, names=["logits"])
    got = Session(exported.path).run(feed)["logits"]
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)
    unmasked = {**feed, "attention_mask": np.ones_like(feed["attention_mask"])}
    assert not np.allclose(Session(exported.path).run(unmasked)["logits"], got, atol=1e-4)

    np.savez(tmp_path / "feed.npz", input_ids=feed["input_ids"])  # the mask is made from the padding
    int8 = tmp_path / "m.int8.onnx"
    result = CliRunner().invoke(
        cli, ["run", str(int8), "-i", str(tmp_path / "feed.npz"), "-o", str(tmp_path / "o.npz")]
    )
    assert result.exit_code == 0, result.output
    assert "positive" in result.output or "neutral" in result.output or "negative" in result.output
    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["logits"], Session(int8).run(feed)["logits"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("exporter", "where"),
    [
        ("dynamo", r"at \S*modeling_vilt\.py:\d+ in .*calling torch\.nn\.functional\.interpolate"),
        ("torchscript", r"the value comes from \S*modeling_vilt\.py:\d+"),
    ],
    ids=["dynamo", "torchscript"],
)
def test_vilt_export_failure_names_the_line_of_its_model_file(tmp_path, exporter, where):
    """ViLT picks image patches with data-dependent sizes (interpolate to a size read from the
    pixel mask, multinomial of a count computed from it): neither exporter takes it."""
    spec = ModelSpec.from_dict(VILT_SPEC)
    with pytest.raises(ExportError, match=where) as e:
        to_onnx(tiny_vilt(), tmp_path / "vilt.onnx", spec=spec, export=ExportConfig(exporter=exporter))
    other = "torchscript" if exporter == "dynamo" else "dynamo"
    assert f"try --exporter {other}" in str(e.value)
    assert "graph(" not in str(e.value) and len(str(e.value)) < 1200
    assert not list(tmp_path.iterdir())
    log = re.search(r"torch's full output: (\S+\.log)", str(e.value))
    assert log is not None
    Path(log.group(1)).unlink()
