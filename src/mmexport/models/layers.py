"""Export-friendly building blocks shared by the built-in models.

Everything here traces with dynamic batch, spatial and sequence dims: no Python control flow on
tensor values, attention written out by hand, and masks applied additively with a large finite
negative number so a row whose keys are all padding stays finite.
"""

from __future__ import annotations

import torch
from torch import nn

MASK_VALUE = -1e9
"""Additive attention bias for masked keys (finite, so fully masked rows give no NaN)."""


class ConvBlock2d(nn.Sequential):
    """3x3 convolution (stride 2 by default) + batch norm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ConvBlock1d(nn.Sequential):
    """1-D convolution (kernel 3, stride 2 by default) + batch norm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__(
            nn.Conv1d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(inplace=True),
        )


def padding_bias(key_mask: torch.Tensor) -> torch.Tensor:
    """Bool [batch, keys] (True = valid) -> additive float bias [batch, 1, 1, keys]."""
    bias = (~key_mask).to(torch.float32) * MASK_VALUE
    return bias[:, None, None, :]


def last_valid(sequence: torch.Tensor, tokens: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Pick sequence[b, n_b - 1] where n_b counts non-PAD tokens of row b (clamped to >= 0).

    sequence: [batch, seq, features]; tokens: [batch, seq] padded at the end -> [batch, features].
    """
    lengths = (tokens != pad_id).sum(dim=1)
    index = (lengths - 1).clamp(min=0)
    index = index[:, None, None].expand(-1, 1, sequence.shape[-1])
    return sequence.gather(1, index).squeeze(1)


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention written with matmul and softmax."""

    def __init__(self, dim: int, num_heads: int, kv_dim: int | None = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError("dim must be divisible by num_heads")
        kv_dim = dim if kv_dim is None else kv_dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim, dim)
        self.v = nn.Linear(kv_dim, dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        # [batch, n, dim] -> [batch, heads, n, head_dim]
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """query [batch, nq, dim], keys [batch, nk, kv_dim], bias broadcastable to
        [batch, heads, nq, nk] -> [batch, nq, dim]."""
        q = self._split(self.q(query)) * (self.head_dim**-0.5)
        k = self._split(self.k(keys))
        v = self._split(self.v(keys))
        scores = q @ k.transpose(-1, -2)
        if bias is not None:
            scores = scores + bias
        weights = scores.softmax(dim=-1)
        mixed = (weights @ v).transpose(1, 2).flatten(2)
        return self.out(mixed)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention block with a key padding bias and a ReLU feed-forward."""

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x [batch, seq, dim], bias [batch, 1, 1, seq] -> [batch, seq, dim]."""
        h = self.norm1(x)
        x = x + self.attn(h, h, bias)
        return x + self.ffn(self.norm2(x))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x [batch, seq, dim] over positions where mask [batch, seq] is True (0 if none)."""
    weights = mask.to(x.dtype)[..., None]
    total = (x * weights).sum(dim=1)
    return total / weights.sum(dim=1).clamp(min=1.0)
