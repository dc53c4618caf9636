"""mmexport: PyTorch multimodal models to ONNX, FP16/INT8 and TensorRT, for edge deployment.

Importing this package needs numpy only; torch, onnx and onnxruntime are imported by the
stages that use them.
"""

from mmexport.core.errors import MmexportError
from mmexport.core.spec import DimSpec, InputSpec, ModelSpec, OutputSpec

__version__ = "0.1.0"

_LAZY = {
    "to_onnx": "mmexport.export",
    "load_model": "mmexport.export",
    "inspect_artifact": "mmexport.core.inspection",
    "to_fp16": "mmexport.precision.stages",
    "calibrate": "mmexport.precision.stages",
    "accuracy": "mmexport.precision.stages",
}


def __getattr__(name: str) -> object:
    """``mmexport.to_onnx`` etc. import torch/onnx only when first used."""
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
