"""Runtime backends: one folder each with the same file names (``loader.py``, ``runner.py``)."""

from mmexport.runtime.backends.base import Backend, BackendConfig, TensorInfo
from mmexport.runtime.backends.registry import BackendEntry, backend_names, register_backend

__all__ = ["Backend", "BackendConfig", "BackendEntry", "TensorInfo", "backend_names", "register_backend"]
