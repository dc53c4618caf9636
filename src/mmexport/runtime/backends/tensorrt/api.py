"""The one place that imports ``tensorrt``, and its version as integers."""

from __future__ import annotations

import importlib
from types import ModuleType

from mmexport.core.errors import MissingDependencyError, MmexportError

# On JetPack, TensorRT's Python bindings come from apt into the system site-packages;
# `pip install tensorrt` cannot install them there.
JETSON_TRT_INSTALL = (
    "on a Jetson, TensorRT comes with JetPack from apt (sudo apt install nvidia-jetpack), not from pip; "
    "make the venv with `python3 -m venv --system-site-packages`"
)


class JetsonTensorRTMissing(MissingDependencyError):
    """TensorRT missing where pip cannot install it (JetPack): the hint is JetPack's apt route."""

    def __init__(self, purpose: str) -> None:
        self.package = "tensorrt"
        self.extra = "trt"
        MmexportError.__init__(
            self,
            f"{purpose} needs the Python package 'tensorrt', which is not installed",
            hint=JETSON_TRT_INSTALL,
        )


def import_tensorrt(
    purpose: str = "building and running TensorRT engines", *, jetson: bool = False
) -> ModuleType:
    """The ``tensorrt`` module, or MissingDependencyError naming the ``trt`` extra (on a Jetson,
    ``jetson=True``: JetPack's apt packages and a venv with system site-packages instead)."""
    try:
        return importlib.import_module("tensorrt")
    except ImportError:
        if jetson:
            raise JetsonTensorRTMissing(purpose) from None
        raise MissingDependencyError("tensorrt", "trt", purpose) from None


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.3.0"`` -> ``(10, 3, 0)``; non-numeric parts end the tuple (``"11.4.0.106"`` keeps 4)."""
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits or digits != piece:
            if digits and piece.startswith(digits):
                parts.append(int(digits))
            break
        parts.append(int(digits))
    return tuple(parts)


def version_of(trt: ModuleType) -> tuple[int, ...]:
    return parse_version(str(getattr(trt, "__version__", "0")))


def generation(trt: ModuleType) -> int:
    """TensorRT's major version (10 or 11): what decides weak typing, builder flags, calibrators."""
    version = version_of(trt)
    return version[0] if version else 0
