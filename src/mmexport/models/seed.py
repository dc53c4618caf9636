"""`seed`: CNN image encoder + GRU text encoder, concatenation and an MLP with softmax.

The image encoder ends in global average pooling, so any image size works; the text summary is
the GRU output at the last non-PAD token, so padding at the end does not change the result.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mmexport.data.synthetic import IMAGE_LABELS, PAD_ID, VOCAB
from mmexport.data.task_spec import SEED_SPEC
from mmexport.models.builtin_parts import ImagePart, ModelPart, TextPart
from mmexport.models.layers import ConvBlock2d, last_valid
from mmexport.models.split_protocol import ConstantWhenAbsent, EncoderPart, SplitParts

WEIGHTS = Path(__file__).parent / "weights" / "seed.pt"

SPEC: dict = SEED_SPEC

NULL_IMAGE_SIZE = 128
"""Side of the blank image whose feature stands in for an absent image (the spec's opt size)."""


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
        return self.head(self.encode_image(image), self.encode_text(tokens))

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Class probabilities [B,C] (softmax over `logits`)."""
        return self.logits(image, tokens).softmax(dim=-1)

    # -- the parts (``split_parts``): forward is exactly head(encode_image, encode_text).softmax

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Image feature [B, C]: global average of the last conv block."""
        return self.image_encoder(image).mean(dim=(2, 3))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Text feature [B, H]: the GRU output at the last non-PAD token."""
        sequence, _ = self.gru(self.embedding(tokens))
        return last_valid(sequence, tokens, PAD_ID)

    def head(self, image_feature: torch.Tensor, text_feature: torch.Tensor) -> torch.Tensor:
        """Concatenation and the MLP: class scores [B,C]."""
        return self.classifier(torch.cat([image_feature, text_feature], dim=1))

    def split_parts(self) -> SplitParts:
        """Image and text encoders and the concatenation + MLP + softmax. An absent image is
        replaced by a null embedding: the encoder's feature of a blank image at the dataset mean
        (all zeros after normalization), computed here. The question may not be absent."""
        with torch.inference_mode():
            blank = torch.zeros(1, 3, NULL_IMAGE_SIZE, NULL_IMAGE_SIZE)
            null_image = self.encode_image(blank)[0].clone()
        return SplitParts(
            encoders=(
                EncoderPart(
                    "image",
                    ImagePart(self),
                    ("image",),
                    ("image_feature",),
                    ConstantWhenAbsent({"image_feature": null_image}),
                ),
                EncoderPart("text", TextPart(self), ("tokens",), ("text_feature",)),
            ),
            fusion=_FusePart(self),
        )


class _FusePart(ModelPart):
    def forward(self, image_feature: torch.Tensor, text_feature: torch.Tensor) -> torch.Tensor:
        return self.model.head(image_feature, text_feature).softmax(dim=-1)


def build(pretrained: bool = True) -> nn.Module:
    """SeedModel in eval mode, with the shipped weights when `pretrained`."""
    model = SeedModel()
    if pretrained:
        state = torch.load(WEIGHTS, weights_only=True, map_location="cpu")
        model.load_state_dict(state)
    return model.eval()
