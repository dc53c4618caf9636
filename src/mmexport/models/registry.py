"""The registry of built-in reference models.

Each entry holds the model's description and spec (numpy-only data, so listing models needs no
torch) and names the module whose ``build(pretrained=True) -> torch.nn.Module`` makes it; that
module is imported on first build.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmexport.core.errors import ModelLoadError
from mmexport.core.spec import ModelSpec
from mmexport.data.task_spec import FUSION_SPEC, SEED_SPEC

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "fusion"


@dataclass(frozen=True)
class BuiltinModel:
    """A reference model shipped with the package, with trained weights."""

    name: str
    module: str
    description: str
    spec_data: dict[str, Any]

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.from_dict(self.spec_data)

    def build(self, pretrained: bool = True) -> torch.nn.Module:
        return importlib.import_module(self.module).build(pretrained=pretrained)


_REGISTRY: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel(
            "fusion",
            "mmexport.models.fusion",
            "Image, text and audio encoders fused by cross-modal attention (default model)",
            FUSION_SPEC,
        ),
        BuiltinModel(
            "seed",
            "mmexport.models.seed",
            "CNN image + GRU text encoders fused by concatenation; answers colour/shape questions",
            SEED_SPEC,
        ),
    )
}


def builtin_names() -> list[str]:
    """Names of the built-in models, the default first."""
    return list(_REGISTRY)


def get_builtin(name: str) -> BuiltinModel:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelLoadError(
            name, "is not a built-in model", hint=f"built-in: {', '.join(_REGISTRY)}"
        ) from None
