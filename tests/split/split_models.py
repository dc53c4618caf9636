"""A tiny splittable model for CLI tests, loaded as ``tests/split/split_models.py:FACTORY``."""

from __future__ import annotations

import torch
from torch import nn

from mmexport.models.split_protocol import ConstantWhenAbsent, EncoderPart, MaskWhenAbsent, SplitParts

MMEXPORT_SPEC = {
    "inputs": [
        {"name": "image", "modality": "image", "dtype": "float32", "shape": ["batch", 3, "height", "width"]},
        {"name": "imu", "modality": "sensor", "dtype": "float32", "shape": ["batch", "steps", 6]},
    ],
    "outputs": ["logits"],
    "dims": {
        "batch": {"min": 1, "opt": 2, "max": 4},
        "height": {"min": 8, "opt": 16, "max": 32},
        "width": {"min": 8, "opt": 16, "max": 32},
        "steps": {"min": 2, "opt": 6, "max": 12},
    },
}


class TinySplit(nn.Module):
    """Conv image features and linear IMU features, averaged; the IMU may be absent (masked)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.imu = nn.Linear(6, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, image: torch.Tensor, imu: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.encode_image(image), self.encode_imu(imu))

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(image)).mean(dim=(2, 3))

    def encode_imu(self, imu: torch.Tensor) -> torch.Tensor:
        return self.imu(imu).mean(dim=1)

    def fuse(self, image_feature: torch.Tensor, imu_feature: torch.Tensor, imu_present=None) -> torch.Tensor:
        if imu_present is not None:
            imu_feature = imu_feature * imu_present[:, None].to(imu_feature.dtype)
        return self.head(image_feature + imu_feature)

    def split_parts(self) -> SplitParts:
        return SplitParts(
            encoders=(
                EncoderPart("image", _Image(self), ("image",), ("image_feature",)),
                EncoderPart("imu", _Imu(self), ("imu",), ("imu_feature",), MaskWhenAbsent("imu_present")),
            ),
            fusion=_Fuse(self),
        )


class _Part(nn.Module):
    def __init__(self, model: TinySplit) -> None:
        super().__init__()
        self.model = model


class _Image(_Part):
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(image)


class _Imu(_Part):
    def forward(self, imu: torch.Tensor) -> torch.Tensor:
        return self.model.encode_imu(imu)


class _Fuse(_Part):
    def forward(self, image_feature: torch.Tensor, imu_feature: torch.Tensor, imu_present: torch.Tensor):
        return self.model.fuse(image_feature, imu_feature, imu_present)


class Disagreeing(TinySplit):
    """Its fusion part adds 0.5 that forward does not: each part passes its own gate, the
    composition does not."""

    def split_parts(self) -> SplitParts:
        parts = super().split_parts()
        return SplitParts(parts.encoders, _Shifted(self))


class _Shifted(_Fuse):
    def forward(self, image_feature: torch.Tensor, imu_feature: torch.Tensor, imu_present: torch.Tensor):
        return super().forward(image_feature, imu_feature, imu_present) + 0.5


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return TinySplit().eval()


def disagreeing() -> nn.Module:
    torch.manual_seed(0)
    return Disagreeing().eval()


PAIR_SPEC = {
    "inputs": [
        {"name": "image", "modality": "image", "dtype": "float32", "shape": ["batch", 3, "height", "width"]},
        {"name": "imu", "modality": "sensor", "dtype": "float32", "shape": ["batch", "steps", 6]},
        {"name": "imu_scale", "modality": "sensor", "dtype": "float32", "shape": ["batch", 1]},
    ],
    "outputs": ["logits", "energy"],
    "dims": MMEXPORT_SPEC["dims"],
}


class PairSplit(nn.Module):
    """An IMU encoder with two inputs (readings and their scale) and two outputs (a feature and an
    energy), absent as a constant; the image feature comes from the same conv; two model outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.imu = nn.Linear(6, 8)
        self.head = nn.Linear(9, 3)

    def forward(self, image: torch.Tensor, imu: torch.Tensor, imu_scale: torch.Tensor):
        return self.fuse(self.encode_image(image), *self.encode_imu(imu, imu_scale))

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(image)).mean(dim=(2, 3))

    def encode_imu(self, imu: torch.Tensor, imu_scale: torch.Tensor):
        feature = self.imu(imu * imu_scale[:, :, None]).mean(dim=1)
        return feature, (feature * feature).sum(dim=1, keepdim=True)

    def fuse(self, image_feature: torch.Tensor, imu_feature: torch.Tensor, imu_energy: torch.Tensor):
        logits = self.head(torch.cat([image_feature + imu_feature, imu_energy], dim=1))
        return logits, imu_energy.squeeze(1) * 2

    def split_parts(self) -> SplitParts:
        null = {"imu_feature": torch.zeros(8), "imu_energy": torch.ones(1)}
        return SplitParts(
            encoders=(
                EncoderPart("image", _Image(self), ("image",), ("image_feature",)),
                EncoderPart(
                    "imu",
                    _PairImu(self),
                    ("imu", "imu_scale"),
                    ("imu_feature", "imu_energy"),
                    ConstantWhenAbsent(null),
                ),
            ),
            fusion=_PairFuse(self),
        )


class _PairImu(_Part):
    def forward(self, imu: torch.Tensor, imu_scale: torch.Tensor):
        return self.model.encode_imu(imu, imu_scale)


class _PairFuse(_Part):
    def forward(self, image_feature: torch.Tensor, imu_feature: torch.Tensor, imu_energy: torch.Tensor):
        return self.model.fuse(image_feature, imu_feature, imu_energy)


def pair() -> nn.Module:
    torch.manual_seed(0)
    return PairSplit().eval()


def renamed(name: str = "imu", flag: str = "imu_present") -> nn.Module:
    """TinySplit whose IMU part has another name or mask flag (for checks of split_parts())."""

    class Renamed(TinySplit):
        def split_parts(self) -> SplitParts:
            image, imu = super().split_parts().encoders
            return SplitParts(
                (image, EncoderPart(name, imu.module, imu.inputs, imu.outputs, MaskWhenAbsent(flag))),
                _Fuse(self),
            )

    torch.manual_seed(0)
    return Renamed().eval()


class GainSplit(TinySplit):
    """forward() needs a constant keyword argument (the spec's call_kwargs), which its fusion part
    takes too; the encoders do not."""

    def forward(self, image: torch.Tensor, imu: torch.Tensor, *, gain: float) -> torch.Tensor:
        return super().forward(image, imu) * gain

    def split_parts(self) -> SplitParts:
        image, imu = super().split_parts().encoders
        return SplitParts((image, imu), _GainFuse(self))


class _GainFuse(_Fuse):
    def forward(self, image_feature, imu_feature, imu_present, *, gain: float):  # type: ignore[override]
        return super().forward(image_feature, imu_feature, imu_present) * gain


def gain() -> nn.Module:
    torch.manual_seed(0)
    return GainSplit().eval()
