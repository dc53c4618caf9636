"""mmexport: PyTorch multimodal models to ONNX, FP16/INT8 and TensorRT, for edge deployment.

Importing this package needs numpy only; torch, onnx and onnxruntime are imported by the
stages that use them.
"""

from mmexport.errors import MmexportError
from mmexport.spec import DimSpec, InputSpec, ModelSpec, OutputSpec

__version__ = "0.1.0"

__all__ = ["DimSpec", "InputSpec", "MmexportError", "ModelSpec", "OutputSpec", "__version__"]
