"""The registry of built-in reference models.

Each entry names a module in ``mmexport.models`` that defines ``SPEC`` (the spec in JSON form),
``DESCRIPTION`` and ``build(pretrained=True) -> torch.nn.Module``. Modules are imported on
first use, so listing names needs no torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from mmexport.errors import ModelLoadError
from mmexport.spec import ModelSpec

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "fusion"


@dataclass(frozen=True)
class BuiltinModel:
    """A reference model shipped with the package, with trained weights."""

    name: str
    module: str

    @cached_property
    def _module(self):
        return importlib.import_module(self.module)

    @property
    def description(self) -> str:
        return self._module.DESCRIPTION

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.from_dict(self._module.SPEC)

    def build(self, pretrained: bool = True) -> torch.nn.Module:
        return self._module.build(pretrained=pretrained)


_REGISTRY: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel("fusion", "mmexport.models.fusion"),
        BuiltinModel("seed", "mmexport.models.seed"),
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
