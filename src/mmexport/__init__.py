"""mmexport: PyTorch multimodal models to ONNX, FP16/INT8 and TensorRT, for edge deployment.

Importing this package needs numpy only; torch, onnx and onnxruntime are imported by the
stages that use them.
"""

from typing import TYPE_CHECKING

from mmexport.core.errors import MmexportError

if TYPE_CHECKING:
    from mmexport.core.spec import DimSpec, InputSpec, ModelSpec, OutputSpec

__version__ = "0.1.0"

_LAZY = {
    "DimSpec": "mmexport.core.spec",
    "InputSpec": "mmexport.core.spec",
    "ModelSpec": "mmexport.core.spec",
    "OutputSpec": "mmexport.core.spec",
    "to_onnx": "mmexport.export",
    "load_model": "mmexport.export",
    "inspect_artifact": "mmexport.core.inspection",
    "to_fp16": "mmexport.precision.stages",
    "calibrate": "mmexport.precision.stages",
    "accuracy": "mmexport.precision.stages",
}


def __getattr__(name: str) -> object:
    """``mmexport.to_onnx`` etc. import torch/onnx only when first used; the spec classes import
    numpy when first used (the command line installs its Ctrl-C handler before that)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmexport' has no attribute {name!r}")


__all__ = [
    "DimSpec",
    "InputSpec",
    "MmexportError",
    "ModelSpec",
    "OutputSpec",
    "__version__",
    "accuracy",
    "calibrate",
    "inspect_artifact",
    "load_model",
    "to_fp16",
    "to_onnx",
]
