"""The split protocol: how a multimodal model offers itself as per-modality parts.

A splittable model has a method ``split_parts() -> SplitParts``: one encoder module per
modality (which model inputs it takes, the names of what it returns) and one fusion module that
takes the encoders' outputs (by name, as keyword arguments) and returns the model's outputs.
The composition must reproduce ``forward`` exactly: ``fusion(**encoders' outputs)`` equals
``model(**inputs)`` (``mmexport to-onnx --split`` checks it at several shape points).

A part may also declare what its absence means (``absent``):

- ``MaskWhenAbsent(flag)``: the fusion module takes a bool input ``flag`` of shape [batch] and
  ignores the part's outputs where it is False (e.g. keys dropped by an attention mask); the
  runtime feeds zeros for the outputs and False for the flag.
- ``ConstantWhenAbsent(values)``: a null embedding, one sample's value per output (no batch
  axis), computed by the model when ``split_parts`` runs (i.e. at export); the runtime repeats
  it along the batch.

A part without a declaration must be present in every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

SPLIT_METHOD = "split_parts"


@dataclass(frozen=True)
class MaskWhenAbsent:
    """The fusion module's bool input ``flag`` [batch] is False where the part is absent."""

    flag: str


@dataclass(frozen=True)
class ConstantWhenAbsent:
    """Output name -> one sample's value (no batch axis), used in place of the part's outputs."""

    values: Mapping[str, torch.Tensor]


Absence = MaskWhenAbsent | ConstantWhenAbsent


@dataclass(frozen=True)
class EncoderPart:
    """``module(**{input: tensor})`` returns a tensor or a tuple of tensors, named ``outputs``."""

    name: str
    module: nn.Module
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    absent: Absence | None = None


@dataclass(frozen=True)
class SplitParts:
    """The encoders and the fusion module (its keyword arguments: encoder outputs and mask flags)."""

    encoders: tuple[EncoderPart, ...]
    fusion: nn.Module
    fusion_name: str = "fuse"
    notes: tuple[str, ...] = field(default_factory=tuple)
