"""Part modules shared by the built-in models' ``split_parts``: each calls one method of the model,
so the parts share its weights and run its own code (the composition is ``forward`` exactly)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ModelPart(nn.Module):
    """A part of ``model``; subclasses name their inputs in ``forward`` (the export binds by name)."""

    model: Any  # the parent model, typed loosely: parts call its own methods

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


class ImagePart(ModelPart):
    """``model.encode_image(image)``."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.model.encode_image(image)
        return result


class TextPart(ModelPart):
    """``model.encode_text(tokens)``."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.model.encode_text(tokens)
        return result
