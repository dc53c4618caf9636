"""INT8 agreement with FP32 on models mmexport did not write: tiny CLIP, Whisper and BERT from
transformers (random weights, no downloads) and a user-style model (conv image branch, transformer
text branch, MLP head), with calibrate's defaults and both Q/DQ layouts.

    python benchmarks/int8_third_party.py [--json benchmarks/results/int8_third_party.json]

Prints, per model and layout, the worst per-sample cosine similarity of each output to FP32 and
the number of quantized nodes, on random feeds from the spec (the default when no data is given).
The goal (INT8 issue): worst cosine >= 0.99, or a stated reason.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import mmexport
from mmexport.core.spec import ModelSpec
from mmexport.precision.stages import CalibrationConfig

TEXT = {"modality": "text", "dtype": "int64"}
SPECS: dict[str, dict[str, Any]] = {
    "clip": {
        "inputs": [
            {"name": "input_ids", **TEXT, "shape": ["texts", "seq"], "range": [1, 99]},
            {"name": "attention_mask", **TEXT, "shape": ["texts", "seq"], "mask_of": "input_ids"},
            {"name": "pixel_values", "modality": "image", "dtype": "float32", "shape": ["images", 3, 32, 32]},
        ],
        "outputs": [
            {"name": "logits_per_image", "shape": ["images", "texts"]},
            {"name": "text_embeds", "shape": ["texts", 16]},
            {"name": "image_embeds", "shape": ["images", 16]},
        ],
        "dims": {
            "texts": {"min": 1, "opt": 4, "max": 8},
            "images": {"min": 1, "opt": 2, "max": 8},
            "seq": {"min": 2, "opt": 7, "max": 16},
        },
    },
    "whisper": {
        "inputs": [
            {"name": "input_features", "modality": "audio", "dtype": "float32", "shape": ["batch", 16, 64]},
            {"name": "decoder_input_ids", **TEXT, "shape": ["batch", "tokens"], "range": [0, 99]},
        ],
        "outputs": ["logits"],
        "dims": {"batch": {"min": 1, "opt": 2, "max": 4}, "tokens": {"min": 1, "opt": 4, "max": 8}},
        "call_kwargs": {"use_cache": False},
    },
    "bert": {
        "inputs": [
            {"name": "input_ids", **TEXT, "shape": ["batch", "seq"], "range": [1, 99]},
            {"name": "attention_mask", **TEXT, "shape": ["batch", "seq"], "mask_of": "input_ids"},
        ],
        "outputs": [{"name": "logits", "labels": ["negative", "neutral", "positive"]}],
        "dims": {"batch": {"min": 1, "opt": 2, "max": 4}, "seq": {"min": 2, "opt": 8, "max": 16}},
    },
    "conv_transformer": {
        "inputs": [
            {"name": "image", "modality": "image", "dtype": "float32", "shape": ["batch", 3, 32, 32]},
            {"name": "tokens", **TEXT, "shape": ["batch", "seq"], "range": [0, 100]},
        ],
        "outputs": [{"name": "logits", "labels": [f"class{i}" for i in range(5)]}],
        "dims": {"batch": {"min": 1, "opt": 4, "max": 8}, "seq": {"min": 4, "opt": 12, "max": 16}},
    },
}


class ConvTransformer(torch.nn.Module):
    """A user-style model: conv image branch, 4-layer transformer text branch, 2-layer MLP head."""

    def __init__(self) -> None:
        super().__init__()
        self.image = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
        )
        self.embed = torch.nn.Embedding(100, 32)
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.text = torch.nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
        self.head = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 5))

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        text = self.text(self.embed(tokens)).mean(dim=1)
        return self.head(torch.cat([self.image(image), text], dim=1))


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "conv_transformer":
        return ConvTransformer().eval()
    import transformers

    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    if name == "clip":
        config = transformers.CLIPConfig(
            text_config={"vocab_size": 99, "max_position_embeddings": 16, **layers},
            vision_config={"image_size": 32, "patch_size": 8, **layers},
            projection_dim=16,
        )
        return transformers.CLIPModel(config).eval()
    if name == "whisper":
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
    config = transformers.BertConfig(vocab_size=99, max_position_embeddings=16, num_labels=3, **layers)
    return transformers.BertForSequenceClassification(config).eval()


def measure(name: str, folder: Path) -> list[dict[str, Any]]:
    spec = ModelSpec.from_dict(SPECS[name])
    exported = mmexport.to_onnx(build(name), folder / f"{name}.onnx", spec=spec)
    rows = []
    for layout in ("tensorrt", "onnxruntime"):
        t0 = time.perf_counter()
        result = mmexport.calibrate(
            exported.path, folder / f"{name}.{layout}.int8.onnx", config=CalibrationConfig(layout=layout)
        )
        seconds = time.perf_counter() - t0
        assert result.accuracy is not None
        variant = result.accuracy.variants[-1]
        rows.append(
            {
                "model": name,
                "layout": layout,
                "samples": result.accuracy.samples,
                "quantized_nodes": result.artifact.manifest.producer.details.get("quantized_nodes")
                if result.artifact
                else None,
                "worst_cosine": {o.output: o.cosine_min for o in variant.outputs},
                "max_abs_diff": {o.output: o.max_abs for o in variant.outputs},
                "agreement": variant.agreement(),
                "calibrate_seconds": round(seconds, 2),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="write the rows and the environment here")
    parser.add_argument("--models", default=",".join(SPECS), help="comma-separated subset")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            rows += measure(name, Path(folder))
    print("| model | layout | samples | quantized nodes | worst cosine per output | top-1 | calibrate s |")
    print("|---|---|---:|---:|---|---:|---:|")
    for r in rows:
        cos = ", ".join(f"{k} {v:.4f}" for k, v in r["worst_cosine"].items())
        agree = "-" if r["agreement"] is None else f"{100 * r['agreement']:.2f}%"
        print(
            f"| {r['model']} | {r['layout']} | {r['samples']} | {r['quantized_nodes']} | {cos} | {agree} "
            f"| {r['calibrate_seconds']} |"
        )
    if args.json:
        env = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine()}
        args.json.write_text(json.dumps({"environment": env, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
