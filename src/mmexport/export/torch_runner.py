"""``TorchRunner``: the eager PyTorch model as a ``Runner``, the reference of the parity gate.

Feeds are checked against the spec like any runner's (``Runner.run``), then given to the module
by keyword with the spec's ``call_kwargs``; the spec's outputs are picked by name from what it
returns (a dict, a transformers ``ModelOutput``, a namedtuple) or taken in order from tensors and
sequences of them. The model's own exceptions propagate unchanged: the gate reports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mmexport.core.spec import CallValue, ModelSpec
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
        names = self.spec.output_names
        outputs = torch_outputs(self.module, feeds, names=names, call_kwargs=self.spec.call_kwargs)
        return dict(zip(names, outputs, strict=False))

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend_name, "library": f"torch {torch.__version__}", "device": "cpu"}

    def __repr__(self) -> str:
        return f"TorchRunner({type(self.module).__name__})"


def torch_outputs(
    module: torch.nn.Module,
    feed: Mapping[str, np.ndarray],
    *,
    names: Sequence[str] | None = None,
    call_kwargs: Mapping[str, CallValue] | None = None,
) -> list[np.ndarray]:
    """Run the eager model on a feed (by keyword, plus ``call_kwargs``) and take its outputs:
    ``names`` picked from a named result, else every tensor in order."""
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feed.items()}
    with torch.inference_mode():
        result = module(**tensors, **(call_kwargs or {}))
    picked = flatten_outputs(result) if names is None else pick_outputs(result, names)
    return [t.detach().cpu().numpy() for t in picked]


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


def _named(result: Any) -> Mapping[str, Any] | None:
    """A result whose parts have names: a dict, a ModelOutput (a dict too), a namedtuple."""
    if isinstance(result, Mapping):
        return result
    if isinstance(result, tuple) and hasattr(result, "_asdict"):
        return dict(result._asdict())
    return None


def pick_outputs(result: Any, names: Sequence[str]) -> list[torch.Tensor]:
    """The outputs called ``names``: by name from a named result that has any of them (the rest,
    caches and hidden states, dropped), else every tensor in order (None and caches dropped)."""
    named = _named(result)
    if named is not None and any(n in named for n in names):
        missing = [n for n in names if n not in named]
        if missing:
            keys = ", ".join(k for k, v in named.items() if isinstance(v, torch.Tensor))
            raise NotTensorsError(f"the model's result has no {missing[0]!r} (its tensors: {keys})")
        for n in names:
            if not isinstance(named[n], torch.Tensor):
                raise NotTensorsError(f"the model's {n!r} is a {type(named[n]).__name__}, not a tensor")
        return [named[n] for n in names]
    if named is None and isinstance(result, (list, tuple)):
        result = [v for v in result if not _is_extra(v)]
    return flatten_outputs(result)


def _is_extra(value: Any) -> bool:
    """Parts of a tuple result that are not outputs: None and cache objects (transformers' Cache)."""
    return value is None or any(c.__name__.endswith("Cache") for c in type(value).__mro__)


class SpecCall(torch.nn.Module):
    """``module`` called as the exporters call it: inputs positionally in ``order``, the spec's
    constant ``call_kwargs`` added, and exactly the spec's outputs returned as a tuple."""

    def __init__(self, module: torch.nn.Module, spec: ModelSpec, order: Sequence[str]) -> None:
        super().__init__()
        self.module = module
        self.order = list(order)
        self.names = spec.output_names
        self.call_kwargs = dict(spec.call_kwargs)

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        result = self.module(**dict(zip(self.order, args, strict=True)), **self.call_kwargs)
        return tuple(pick_outputs(result, self.names))
