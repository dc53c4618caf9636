"""``OnnxrtRunner``: runs validated feeds on an onnxruntime session (``Session``'s backend), and
``OnnxModelRunner``: the same library as a ``Runner`` over an ONNX model without a manifest.

``run`` (host arrays in and out, every provider): the session's own run, which copies to and
from the device itself. ``run_on_device`` (CUDA and TensorRT): I/O binding, one binding per call
(so calls from several threads never share one), outputs allocated on the device and left
there; it accepts ``OrtValue`` inputs already on the device, so data produced on the GPU never
travels through the host. With
``options={"cuda_graph": True}`` (CUDA provider): captured CUDA graphs, one per set of input
shapes, at fixed buffers (``cuda_graph.CudaGraphs``).
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
from mmexport.runtime.backends.onnxrt.cuda_graph import CudaGraphs
from mmexport.runtime.backends.onnxrt.loader import (
    PROVIDERS,
    first_line,
    import_onnxruntime,
    model_name,
    open_model,
    open_session,
    run_errors,
)
from mmexport.runtime.graph_spec import spec_from_graph
from mmexport.runtime.runner import Capability, Runner


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
        self._errors = run_errors()
        self._graphs: CudaGraphs | None = None
        self._session_run: Any = None
        if not config.options.get("cuda_graph"):
            # host in, host out: onnxruntime's own run, which copies to and from the device itself
            # (with a binding per call instead, Session.run measured 0.85 ms against bare run's
            # 0.75 ms, fusion batch 1 on an H200)
            self.run = self._run_host  # type: ignore[method-assign]  # every call's path: no branch
            self._session_run = direct_run(self._session)
        else:
            self._graphs = CudaGraphs(
                import_onnxruntime(),
                self._session,
                [i.name for i in self._inputs],
                self._output_names,
                device_id=config.device_id,
                errors=self._errors,
            )
            self.run = self._graphs.run  # type: ignore[method-assign]

    def inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    def outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # replaced at load by _run_host, or by the graphs' run with cuda_graph (one frame less)
        return self._graphs.run(feeds) if self._graphs is not None else self._run_host(feeds)

    def _run_host(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self._session_run(self._output_names, feeds, None)
        except self._errors as e:
            raise BackendError("onnxruntime", f"inference failed: {first_line(e)}") from e
        return dict(zip(self._output_names, values, strict=True))

    def run_on_device(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Feeds as ``OrtValue`` on the device (or host arrays); outputs as ``OrtValue`` on the device.
        With cuda_graph, feeds are copied into the graph's buffers, and outputs are the graph's
        buffers, valid until the next call at the same shapes."""
        if self._provider == "cpu":
            raise BackendError("onnxruntime", "run_on_device needs device='cuda'")
        if self._graphs is not None:
            return self._graphs.run_on_device(feeds)
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
        if self._graphs is not None:
            self._graphs.close()
        self._session = self._session_run = None  # the bound run would keep the session alive

    def describe(self) -> dict[str, Any]:
        ort = import_onnxruntime()
        return {
            "backend": self.name,
            "library": f"onnxruntime {ort.__version__}",
            "provider": PROVIDERS[self._provider],
            "providers": list(self._providers),
            "device": "cpu" if self._provider == "cpu" else f"cuda:{self._device_id}",
            "cuda_graph": self._graphs is not None,
        }


class OnnxModelRunner(Runner):
    """An ONNX model (serialized bytes or a path) on onnxruntime's CPU provider, as a ``Runner``:
    what the parity gate, calibration and accuracy run (they hold a model, not a deployed artifact).

    ``spec``: what feeds are checked against (None: the graph's own inputs); the graph then gets
    the inputs it has (an exporter drops inputs the graph does not use). ``outputs``: the tensors
    to fetch, intermediate ones included (default: the spec's outputs, or the graph's).
    ``optimize=False`` runs the graph as written, ``mem_pattern=False`` holds no planned activation
    buffers between runs, ``weights_folder`` is where a serialized model's external weights lie,
    ``name`` what errors call a serialized model, ``fold_dequantize`` dequantizes constant weights
    once at load (see ``open_model``).
    """

    backend_name = "onnxrt"

    def __init__(
        self,
        model: bytes | str | Path,
        spec: ModelSpec | None = None,
        *,
        outputs: list[str] | None = None,
        optimize: bool = True,
        threads: int | None = None,
        mem_pattern: bool = True,
        weights_folder: Path | None = None,
        name: str | None = None,
        fold_dequantize: bool = False,
    ) -> None:
        super().__init__()
        self._session = open_model(
            model,
            optimize=optimize,
            threads=threads,
            mem_pattern=mem_pattern,
            weights_folder=weights_folder,
            name=name,
            fold_dequantize=fold_dequantize,
        )
        where = Path(model_name(model, name))
        inputs = [_info(i) for i in self._session.get_inputs()]
        graph_outputs = [_info(o) for o in self._session.get_outputs()]
        graph = spec_from_graph(where, inputs, graph_outputs)
        self._use_spec(spec or graph, "given" if spec is not None else "graph")
        self._graph_inputs = frozenset(i.name for i in inputs)
        self._fetch = list(outputs) if outputs is not None else self.spec.output_names
        self._errors = run_errors()

    @property
    def output_names(self) -> list[str]:
        return list(self._fetch)

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        given = {k: v for k, v in feeds.items() if k in self._graph_inputs}
        try:
            values = self._session.run(self._fetch, given)
        except self._errors as e:
            raise BackendError("onnxruntime", f"inference failed: {first_line(e)}") from e
        return dict(zip(self._fetch, values, strict=True))

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend_name,
            "library": f"onnxruntime {import_onnxruntime().__version__}",
            "provider": PROVIDERS["cpu"],
            "device": "cpu",
        }

    def _close(self) -> None:
        self._session = None

    def __repr__(self) -> str:
        return f"OnnxModelRunner(outputs={self._fetch!r})"


def direct_run(session: Any) -> Any:
    """``run(output_names, feeds, run_options)`` of the session's compiled binding, where there is
    one (``InferenceSession._sess``, what ``InferenceSession.run`` calls), else ``session.run``.

    ``InferenceSession.run``'s Python checks (every input present, OrtValue ownership, WebGPU graph
    capture) repeat what validation has already made of feeds that are numpy arrays only, and cost
    a few microseconds per call (benchmarks/session_overhead.py); its other work, a silent retry
    on the fallback providers (the CPU) when a GPU provider fails, is what mmexport refuses: the
    failure is raised instead, as one error line."""
    compiled = getattr(session, "_sess", None)
    run = getattr(compiled, "run", None)
    return run if callable(run) else session.run


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
