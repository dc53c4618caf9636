"""`fusion`: image, text and audio encoders joined by cross-modal attention.

A CNN turns the image into a grid of image tokens, strided 1-D convolutions turn the log-mel
spectrogram into audio tokens, and a small transformer (learned positions, key padding mask)
summarizes the question. The question summary then attends over all image and audio tokens (plus
one mean-pooled token per modality) with multi-head attention, and an MLP maps
[summary, attended] to class logits.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mmexport.data.synthetic import (
    LABELS,
    N_MELS,
    PAD_ID,
    VOCAB,
)
from mmexport.data.task_spec import DIMS, FUSION_SPEC
from mmexport.models.builtin_parts import ImagePart, ModelPart, TextPart
from mmexport.models.layers import (
    ConvBlock1d,
    ConvBlock2d,
    MultiHeadAttention,
    TransformerBlock,
    masked_mean,
    padding_bias,
)
from mmexport.models.split_protocol import EncoderPart, MaskWhenAbsent, SplitParts

WEIGHTS = Path(__file__).parent / "weights" / "fusion.pt"

MAX_SEQ = DIMS["seq"]["max"]
"""Length of the learned position table (the seq dim's max)."""

SPEC: dict = FUSION_SPEC


class FusionModel(nn.Module):
    """forward(image [B,3,H,W], tokens [B,S] int64, audio [B,64,F]) -> logits [B,C]."""

    def __init__(
        self,
        vocab_size: int = len(VOCAB),
        num_classes: int = len(LABELS),
        n_mels: int = N_MELS,
        dim: int = 64,
        num_heads: int = 4,
        image_channels: tuple[int, ...] = (8, 16, 32, 64, 64),
        text_layers: int = 1,
        max_seq: int = MAX_SEQ,
        hidden_dim: int = 128,
    ) -> None:
        super().__init__()
        blocks = []
        in_channels = 3
        for out_channels in image_channels:
            blocks.append(ConvBlock2d(in_channels, out_channels))
            in_channels = out_channels
        self.image_encoder = nn.Sequential(*blocks)
        self.image_proj = nn.Linear(image_channels[-1], dim)
        self.audio_encoder = nn.Sequential(
            nn.BatchNorm1d(n_mels), ConvBlock1d(n_mels, dim), ConvBlock1d(dim, dim)
        )
        self.audio_proj = nn.Linear(dim, dim)
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
        self.positions = nn.Parameter(torch.randn(max_seq, dim) * 0.02)
        self.text_blocks = nn.ModuleList(
            [TransformerBlock(dim, num_heads, hidden_dim) for _ in range(text_layers)]
        )
        self.text_norm = nn.LayerNorm(dim)
        self.modality = nn.Parameter(torch.randn(2, dim) * 0.02)
        self.memory_norm = nn.LayerNorm(dim)
        self.cross = MultiHeadAttention(dim, num_heads)
        self.classifier = nn.Sequential(
            nn.Linear(2 * dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_classes)
        )

    def forward(self, image: torch.Tensor, tokens: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Class logits [B,C]."""
        return self.fuse(self.encode_image(image), self.encode_text(tokens), self.encode_audio(audio))

    # -- the parts (``split_parts``): forward is exactly fuse(encode_image, encode_text, encode_audio)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Image tokens [B, 1 + cells, D]: a mean-pooled token, then one per grid cell."""
        grid = self.image_encoder(image).flatten(2).transpose(1, 2)
        return self.image_proj(torch.cat([grid.mean(1, keepdim=True), grid], 1))

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio tokens [B, 1 + steps, D]: a mean-pooled token, then one per strided frame."""
        grid = self.audio_encoder(audio).transpose(1, 2)
        return self.audio_proj(torch.cat([grid.mean(1, keepdim=True), grid], 1))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Question summary [B, D]: masked mean of the transformer's outputs over non-PAD tokens."""
        valid = tokens != PAD_ID
        bias = padding_bias(valid)
        text = self.embedding(tokens) + self.positions[: tokens.shape[1]]
        for block in self.text_blocks:
            text = block(text, bias)
        return masked_mean(self.text_norm(text), valid)

    def fuse(
        self,
        image_tokens: torch.Tensor,
        summary: torch.Tensor,
        audio_tokens: torch.Tensor,
        image_present: torch.Tensor | None = None,
        audio_present: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The summary attends over image and audio tokens; the MLP maps [summary, attended] to logits.

        ``image_present`` / ``audio_present`` (bool [B]): where False, that modality's tokens are
        masked out of the attention (a missing modality). Where True, the mask adds 0.
        """
        memory = torch.cat([image_tokens + self.modality[0], audio_tokens + self.modality[1]], dim=1)
        memory = self.memory_norm(memory)
        bias = None
        if image_present is not None and audio_present is not None:
            keys = torch.cat(
                [
                    image_present[:, None].expand(-1, image_tokens.shape[1]),
                    audio_present[:, None].expand(-1, audio_tokens.shape[1]),
                ],
                dim=1,
            )
            bias = padding_bias(keys)
        attended = self.cross(summary[:, None, :], memory, bias).squeeze(1)
        return self.classifier(torch.cat([summary, attended], dim=1))

    def split_parts(self) -> SplitParts:
        """Image, text and audio encoders and the cross-attention fusion; image and audio may be
        absent (their tokens are masked out of the attention), the question may not."""
        return SplitParts(
            encoders=(
                EncoderPart(
                    "image", ImagePart(self), ("image",), ("image_tokens",), MaskWhenAbsent("image_present")
                ),
                EncoderPart("text", TextPart(self), ("tokens",), ("summary",)),
                EncoderPart(
                    "audio", _AudioPart(self), ("audio",), ("audio_tokens",), MaskWhenAbsent("audio_present")
                ),
            ),
            fusion=_FusePart(self),
        )


class _AudioPart(ModelPart):
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model.encode_audio(audio)


class _FusePart(ModelPart):
    def forward(
        self,
        image_tokens: torch.Tensor,
        summary: torch.Tensor,
        audio_tokens: torch.Tensor,
        image_present: torch.Tensor,
        audio_present: torch.Tensor,
    ) -> torch.Tensor:
        return self.model.fuse(image_tokens, summary, audio_tokens, image_present, audio_present)


def build(pretrained: bool = True) -> nn.Module:
    """FusionModel in eval mode, with the shipped weights when `pretrained`."""
    model = FusionModel()
    if pretrained:
        state = torch.load(WEIGHTS, weights_only=True, map_location="cpu")
        model.load_state_dict(state)
    return model.eval()
