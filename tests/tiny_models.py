"""Tiny multimodal models built in code, loaded by tests as ``tests/tiny_models.py:FACTORY``."""

from __future__ import annotations

import torch
from torch import nn

TINY_SPEC = {
    "inputs": [
        {"name": "image", "modality": "image", "dtype": "float32", "shape": ["batch", 3, "height", "width"]},
        {"name": "tokens", "modality": "text", "dtype": "int64", "shape": ["batch", "seq"], "range": [0, 20]},
        {"name": "imu", "modality": "sensor", "dtype": "float32", "shape": ["batch", "steps", 6]},
    ],
    "outputs": ["logits"],
    "dims": {
        "batch": {"min": 1, "opt": 2, "max": 4},
        "height": {"min": 8, "opt": 16, "max": 32},
        "width": {"min": 8, "opt": 16, "max": 32},
        "seq": {"min": 1, "opt": 5, "max": 12},
        "steps": {"min": 2, "opt": 10, "max": 20},
    },
}


class TinyFusion(nn.Module):
    """Conv image branch, embedding text branch, GRU sensor branch, concatenation, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.embed = nn.Embedding(20, 8)
        self.gru = nn.GRU(6, 8, batch_first=True)
        self.head = nn.Linear(24, 5)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor, imu: torch.Tensor) -> torch.Tensor:
        img = torch.relu(self.conv(image)).mean(dim=(2, 3))
        txt = self.embed(tokens).mean(dim=1)
        _, h = self.gru(imu)
        return self.head(torch.cat([img, txt, h[0]], dim=1))


class ExportCheater(TinyFusion):
    """Computes something else while being exported: the gate must refuse it."""

    def forward(self, image: torch.Tensor, tokens: torch.Tensor, imu: torch.Tensor) -> torch.Tensor:
        out = super().forward(image, tokens, imu)
        if torch.compiler.is_exporting():
            return out * 1.01
        return out


class TwoOutputs(TinyFusion):
    def forward(self, image: torch.Tensor, tokens: torch.Tensor, imu: torch.Tensor):
        out = super().forward(image, tokens, imu)
        return out, out.softmax(-1)


class BatchSpecializer(TinyFusion):
    """Reshapes with a hard-coded batch: the batch dim cannot be dynamic."""

    def forward(self, image: torch.Tensor, tokens: torch.Tensor, imu: torch.Tensor) -> torch.Tensor:
        return super().forward(image, tokens, imu).reshape(2, 5)


MMEXPORT_SPEC = TINY_SPEC


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return TinyFusion().eval()


def cheater() -> nn.Module:
    torch.manual_seed(0)
    return ExportCheater().eval()


def two_outputs() -> nn.Module:
    torch.manual_seed(0)
    return TwoOutputs().eval()


def specializer() -> nn.Module:
    torch.manual_seed(0)
    return BatchSpecializer().eval()


def not_a_module() -> str:
    return "a string"


def raises() -> nn.Module:
    raise RuntimeError("weights not found")


class SumOfTwo(nn.Module):
    """Adds two inputs: their dims must be equal, whatever the spec calls them."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


def sum_of_two() -> nn.Module:
    return SumOfTwo()


SUM_SPEC = {
    "inputs": [
        {"name": "a", "modality": "sensor", "dtype": "float32", "shape": ["batch", "n"]},
        {"name": "b", "modality": "sensor", "dtype": "float32", "shape": ["batch", "m"]},
    ],
    "outputs": ["y"],
    "dims": {
        "batch": {"min": 1, "opt": 2, "max": 4},
        "n": {"min": 2, "opt": 8, "max": 16},
        "m": {"min": 2, "opt": 8, "max": 16},
    },
}


class ShortTextOnly(TinyFusion):
    """Eager code refuses long texts (as a fixed position table would); export does not see it."""

    def forward(self, image: torch.Tensor, tokens: torch.Tensor, imu: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_exporting() and tokens.shape[1] > 8:
            raise ValueError("at most 8 tokens")
        return super().forward(image, tokens, imu)


class IgnoresText(TinyFusion):
    def forward(self, image: torch.Tensor, tokens: torch.Tensor, imu: torch.Tensor) -> torch.Tensor:
        return super().forward(image, torch.zeros_like(image[:, 0, 0, :1], dtype=torch.long), imu)


def short_text_only() -> nn.Module:
    torch.manual_seed(0)
    return ShortTextOnly().eval()


def ignores_text() -> nn.Module:
    torch.manual_seed(0)
    return IgnoresText().eval()
