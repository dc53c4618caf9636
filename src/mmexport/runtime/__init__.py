"""Run mmexport artifacts: ``Session(path).run(feeds)``, strict about inputs, small and fast.

Needs numpy and a backend library (onnxruntime) only: no torch, no click.

    from mmexport.runtime import Session
    session = Session("model.onnx")                 # reads model.onnx.json for the spec
    outputs = session.run({"image": image, "tokens": tokens, "audio": audio})
"""

from mmexport.core.errors import BackendError, InputError
from mmexport.runtime.backends import Backend, BackendConfig, TensorInfo, backend_names, register_backend
from mmexport.runtime.compare import Comparison, OutputComparison, Tolerance, compare
from mmexport.runtime.runner import Capability, Runner
from mmexport.runtime.session import Session
from mmexport.runtime.validation import FeedValidator, can_cast_losslessly

__all__ = [
    "Backend",
    "BackendConfig",
    "BackendError",
    "Capability",
    "Comparison",
    "FeedValidator",
    "InputError",
    "OutputComparison",
    "Runner",
    "Session",
    "TensorInfo",
    "Tolerance",
    "backend_names",
    "can_cast_losslessly",
    "compare",
    "register_backend",
]
