"""torch -> ONNX: model loading, export with the spec's dynamic dims, and the parity gate."""

from mmexport.export.loader import LoadedModel, load_model
from mmexport.export.onnx_export import DEFAULT_OPSET, ExportConfig
from mmexport.export.parity import ParityConfig, ParityReport, run_parity
from mmexport.export.stage import ToOnnxResult, to_onnx

__all__ = [
    "DEFAULT_OPSET",
    "ExportConfig",
    "LoadedModel",
    "ParityConfig",
    "ParityReport",
    "ToOnnxResult",
    "load_model",
    "run_parity",
    "to_onnx",
]
