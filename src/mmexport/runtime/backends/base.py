"""The one interface every runtime backend implements, and the settings it receives.

A backend only loads an artifact and runs already-validated feeds: input checks happen once,
in ``Session``, before any backend sees the data (as Polygraphy's ``BaseRunner`` does).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.errors import InputError
from mmexport.core.spec import ModelSpec
from mmexport.runtime.runner import Capability


@dataclass(frozen=True)
class BackendConfig:
    """What a caller may ask of any backend; each backend reads what applies to it.

    ``device`` is ``"cpu"`` or ``"cuda"`` (``device_id`` picks the GPU); ``provider`` selects
    onnxruntime's execution provider (``"cpu"``, ``"cuda"``, ``"tensorrt"``; None follows
    ``device``); ``threads`` caps intra-op CPU threads (None: the library's default);
    ``cache_dir`` is where TensorRT engines are cached (None: ``<artifact>.trt-cache`` beside it).
    ``spin``: whether idle CPU worker threads busy-wait for the next call (None: the library's
    default, on in onnxruntime). Spinning saves a little latency for one model called in a tight
    loop, but keeps cores busy that other models, or the robot's own code, need.
    ``options``: settings only one backend reads (onnxruntime: ``cuda_graph``; TensorRT:
    ``cuda_graph``, ``pinned``); a backend refuses options it does not know.
    """

    device: str = "cpu"
    device_id: int = 0
    provider: str | None = None
    threads: int | None = None
    cache_dir: Path | None = None
    spin: bool | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TensorInfo:
    """An input or output as the loaded artifact declares it; None or a name for dynamic axes."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]


class Backend(abc.ABC):
    """Loads one artifact and runs feeds on it. Implementations must allow concurrent ``run`` calls.

    ``capabilities`` declares what it offers beyond ``run`` (``run_on_device``, ``timings``);
    ``Session`` passes it on as its own and calls only what is declared.
    """

    name: str = "?"
    capabilities: frozenset[Capability] = frozenset()

    @abc.abstractmethod
    def __init__(self, path: Path, spec: ModelSpec | None, config: BackendConfig) -> None:
        """Load ``path``; ``spec`` (None without a manifest) may shape options such as profiles."""

    @abc.abstractmethod
    def inputs(self) -> list[TensorInfo]:
        """The artifact's inputs, in its own order."""

    @abc.abstractmethod
    def outputs(self) -> list[TensorInfo]:
        """The artifact's outputs, in its own order."""

    @abc.abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run validated host feeds; every output, copied to host memory, by name."""

    def feed_meta(self, name: str, value: Any) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of a feed for ``run_on_device`` (checked before it runs); ``InputError``
        for a value this backend cannot take. Here: host arrays only."""
        if isinstance(value, np.ndarray):
            return value.shape, value.dtype
        raise feed_type_error(name, value, "a numpy.ndarray")

    def run_on_device(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Feeds on the device or host, outputs left on the device (``Capability.RUN_ON_DEVICE``)."""
        raise NotImplementedError(f"{type(self).__name__} does not declare Capability.RUN_ON_DEVICE")

    def timings(self) -> dict[str, float] | None:
        """GPU milliseconds of the last call by phase (``Capability.TIMINGS``)."""
        return None

    def describe(self) -> dict[str, Any]:
        """Backend, device, provider and library version, for reports."""
        return {"backend": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (device memory, sessions)."""


def feed_type_error(name: str, value: Any, accepted: str, hint: str | None = None) -> InputError:
    """The error for a feed of a type the backend does not take: the input, what it takes, what it got."""
    kind = type(value)
    given = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return InputError(name, f"must be {accepted}, got {given}", expected=accepted, actual=given, hint=hint)
