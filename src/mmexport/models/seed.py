"""`seed`: CNN image encoder + GRU text encoder, concatenation and an MLP with softmax.

The image encoder ends in global average pooling, so any image size works; the text summary is
the GRU output at the last non-PAD token, so padding at the end does not change the result.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mmexport.data.synthetic import IMAGE_LABELS, PAD_ID, VOCAB
from mmexport.models.layers import ConvBlock2d, last_valid
from mmexport.models.task_spec import SEED_SPEC

WEIGHTS = Path(__file__).parent / "weights" / "seed.pt"

SPEC: dict = SEED_SPEC


class SeedModel(nn.Module):
    """forward(image [B,3,H,W] float32, tokens [B,S] int64) -> class probabilities [B,C]."""

    def __init__(
        self,
        vocab_size: int = len(VOCAB),
        num_classes: int = len(IMAGE_LABELS),
        channels: tuple[int, ...] = (8, 16, 32, 64, 64),
        embed_dim: int = 32,
        hidden_dim: int = 64,
        fusion_dim: int = 128,
    ) -> None:
        super().__init__()
        blocks = []
        in_channels = 3
        for out_channels in channels:
            blocks.append(ConvBlock2d(in_channels, out_channels))
            in_channels = out_channels
        self.image_encoder = nn.Sequential(*blocks)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.gru = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.classifier = nn.Sequential(
            nn.Linear(channels[-1] + hidden_dim, fusion_dim),
            nn.ReLU(),
            nn.Linear(fusion_dim, fusion_dim),
            nn.ReLU(),
            nn.Linear(fusion_dim, num_classes),
        )

    def logits(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Unnormalized class scores [B,C] (used for training)."""
        image_feature = self.image_encoder(image).mean(dim=(2, 3))
        sequence, _ = self.gru(self.embedding(tokens))
        text_feature = last_valid(sequence, tokens, PAD_ID)
        return self.classifier(torch.cat([image_feature, text_feature], dim=1))

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Class probabilities [B,C] (softmax over `logits`)."""
        return self.logits(image, tokens).softmax(dim=-1)


def build(pretrained: bool = True) -> nn.Module:
    """SeedModel in eval mode, with the shipped weights when `pretrained`."""
    model = SeedModel()
    if pretrained:
        state = torch.load(WEIGHTS, weights_only=True, map_location="cpu")
        model.load_state_dict(state)
    return model.eval()
