"""``TorchRunner``: the eager PyTorch model as a ``Runner``, the reference of the parity gate.

Feeds are checked against the spec like any runner's (``Runner.run``), then given to the module
by keyword; what it returns (tensors, or containers of them) is flattened in order and named by
the spec's outputs. The model's own exceptions propagate unchanged: the gate reports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mmexport.core.spec import ModelSpec
from mmexport.runtime.runner import Runner


class TorchRunner(Runner):
    """``module`` (eager, on the CPU, in inference mode) run on feeds checked against ``spec``."""

    backend_name = "pytorch"

    def __init__(self, module: torch.nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.module = module
        self._use_spec(spec, "given")

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs named by the spec, in order (a model returning fewer gives fewer)."""
        return dict(zip(self.spec.output_names, torch_outputs(self.module, feeds), strict=False))

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend_name, "library": f"torch {torch.__version__}", "device": "cpu"}

    def __repr__(self) -> str:
        return f"TorchRunner({type(self.module).__name__})"


def torch_outputs(module: torch.nn.Module, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run the eager model on a feed (by keyword) and flatten what it returns."""
    with torch.inference_mode():
        result = module(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feed.items()})
    return [t.detach().cpu().numpy() for t in flatten_outputs(result)]


class NotTensorsError(TypeError):
    """forward() returned something other than tensors (or containers of them)."""


def flatten_outputs(result: Any) -> list[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, Mapping):
        return [t for v in result.values() for t in flatten_outputs(v)]
    if isinstance(result, Sequence):
        return [t for v in result for t in flatten_outputs(v)]
    raise NotTensorsError(f"the model returned a {type(result).__name__}, not tensors")
