"""``OnnxrtRunner``: runs validated feeds on an onnxruntime session.

CPU: ``InferenceSession.run``. CUDA and TensorRT: I/O binding, one binding per call (so calls
from several threads never share one), outputs allocated on the device; ``run`` copies them to
host memory, ``run_on_device`` leaves them there and accepts ``OrtValue`` inputs already on the
device, so data produced on the GPU never travels through the host.
onnxruntime's ``run`` may be called from several threads at once on one session.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.errors import ArtifactError, BackendError, InputError
from mmexport.core.spec import ModelSpec
from mmexport.runtime.backends.base import Backend, BackendConfig, TensorInfo, feed_type_error
from mmexport.runtime.backends.onnxrt.loader import PROVIDERS, first_line, import_onnxruntime, open_session
from mmexport.runtime.runner import Capability


class OnnxrtRunner(Backend):
    name = "onnxrt"
    capabilities = frozenset({Capability.RUN_ON_DEVICE})  # with device="cuda"

    def __init__(self, path: Path, spec: ModelSpec | None, config: BackendConfig) -> None:
        self._session, self._provider = open_session(path, spec, config)
        self._device_id = config.device_id
        try:  # names are decoded here: a damaged file can hold invalid UTF-8
            self._inputs = [_info(i) for i in self._session.get_inputs()]
            self._outputs = [_info(o) for o in self._session.get_outputs()]
        except UnicodeDecodeError as e:
            raise ArtifactError(str(path), f"names a tensor in invalid UTF-8 (damaged file?): {e}") from e
        self._output_names = [o.name for o in self._outputs]
        self._providers = list(self._session.get_providers())
        state = import_onnxruntime().capi.onnxruntime_pybind11_state
        # its own classes (Fail, InvalidArgument, ...), plus RuntimeError when it cannot make an
        # input tensor and MemoryError when it cannot allocate one
        self._errors: tuple[type[BaseException], ...] = (
            *(c for c in vars(state).values() if isinstance(c, type) and issubclass(c, Exception)),
            RuntimeError,
            MemoryError,
        )

    def inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    def outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._provider != "cpu":
            binding = self._bind(feeds)
            self._run_binding(binding)
            return dict(zip(self._output_names, binding.copy_outputs_to_cpu(), strict=True))
        try:
            values = self._session.run(self._output_names, feeds)
        except self._errors as e:
            raise BackendError("onnxruntime", f"inference failed: {first_line(e)}") from e
        return dict(zip(self._output_names, values, strict=True))

    def run_on_device(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Feeds as ``OrtValue`` on the device (or host arrays); outputs as ``OrtValue`` on the device."""
        if self._provider == "cpu":
            raise BackendError("onnxruntime", "run_on_device needs device='cuda'")
        binding = self._bind(feeds)
        self._run_binding(binding)
        return dict(zip(self._output_names, binding.get_outputs(), strict=True))

    def feed_meta(self, name: str, value: Any) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of a host array or a tensor ``OrtValue``; ``InputError`` for anything else."""
        if isinstance(value, np.ndarray):
            return value.shape, value.dtype
        if not isinstance(value, import_onnxruntime().OrtValue):
            hint = "torch: tensor.numpy() for a CPU tensor" if hasattr(value, "data_ptr") else None
            raise feed_type_error(name, value, "a numpy.ndarray or an onnxruntime.OrtValue", hint)
        kind = value.data_type()
        if not value.is_tensor() or kind not in _ORT_TYPES:
            raise InputError(name, f"is an OrtValue holding {kind}, not a tensor of a type the model takes")
        return tuple(value.shape()), np.dtype(_ORT_TYPES[kind])

    def _bind(self, feeds: Mapping[str, Any]) -> Any:
        binding = self._session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
            else:
                binding.bind_ortvalue_input(name, value)
        for name in self._output_names:
            binding.bind_output(name, "cuda", self._device_id)
        return binding

    def _run_binding(self, binding: Any) -> None:
        try:
            self._session.run_with_iobinding(binding)
        except self._errors as e:
            raise BackendError("onnxruntime", f"inference failed: {first_line(e)}") from e

    def close(self) -> None:
        """Drop the onnxruntime session, so that its memory (weights, arenas) is released."""
        self._session = None

    def describe(self) -> dict[str, Any]:
        ort = import_onnxruntime()
        return {
            "backend": self.name,
            "library": f"onnxruntime {ort.__version__}",
            "provider": PROVIDERS[self._provider],
            "providers": list(self._providers),
            "device": "cpu" if self._provider == "cpu" else f"cuda:{self._device_id}",
        }


_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _info(arg: Any) -> TensorInfo:
    shape = tuple(d if isinstance(d, (int, str)) and d != "" else None for d in (arg.shape or ()))
    return TensorInfo(arg.name, _ORT_TYPES.get(arg.type, arg.type), shape)
