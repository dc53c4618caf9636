"""A CLIP architecture from transformers (random weights, tiny config): image + text in, similarity out."""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SIZE = 32

MMEXPORT_SPEC = {
    "inputs": [
        {
            "name": "pixel_values",
            "modality": "image",
            "dtype": "float32",
            "shape": ["batch", 3, IMAGE_SIZE, IMAGE_SIZE],
        },
        {
            "name": "input_ids",
            "modality": "text",
            "dtype": "int64",
            "shape": ["batch", "seq"],
            "range": [0, 99],
        },
        {
            "name": "attention_mask",
            "modality": "text",
            "dtype": "int64",
            "shape": ["batch", "seq"],
            "range": [1, 2],
        },
    ],
    "outputs": ["image_embeds", "text_embeds"],
    "dims": {"batch": {"min": 1, "opt": 2, "max": 8}, "seq": {"min": 2, "opt": 7, "max": 16}},
}


class ClipEmbeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from transformers import CLIPConfig, CLIPModel

        torch.manual_seed(0)
        config = CLIPConfig(
            text_config={
                "vocab_size": 99,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "max_position_embeddings": 16,
            },
            vision_config={
                "image_size": IMAGE_SIZE,
                "patch_size": 8,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
            },
            projection_dim=16,
        )
        self.clip = CLIPModel(config).eval()

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        out = self.clip(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
        return out.image_embeds, out.text_embeds


def build() -> nn.Module:
    return ClipEmbeddings().eval()
