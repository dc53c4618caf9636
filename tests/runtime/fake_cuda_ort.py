"""A stand-in for onnxruntime-gpu's CUDA execution provider, over the real CPU onnxruntime.

Only what the CUDA EP adds is faked, under onnxruntime's real names: ``get_available_providers``
lists ``CUDAExecutionProvider``; ``InferenceSession`` records the providers it was given and runs on
the CPU; device ``"cuda"`` in ``ortvalue_from_shape_and_type`` and ``bind_output`` becomes ``"cpu"``;
and, with ``enable_cuda_graph``, ``run_with_iobinding`` behaves as CUDA graphs do: the run with a
new ``gpu_graph_id`` captures the binding's buffers, and later runs with that id replay the
captured buffers (whatever binding is passed, and without checking shapes, as onnxruntime does).
Everything else (I/O binding, ``OrtValue``, ``RunOptions``) is the real onnxruntime.
"""

from __future__ import annotations

from typing import Any

import onnxruntime as real_ort

CAPTURE_REFUSAL = "This session cannot use the graph capture feature as requested by the user"
CUDA = "CUDAExecutionProvider"


class _Binding:
    def __init__(self, binding: Any) -> None:
        self.real = binding

    def bind_output(self, name: str, device_type: str = "cpu", device_id: int = 0, *args: Any) -> None:
        self.real.bind_output(name, "cpu" if device_type == "cuda" else device_type, device_id, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class FakeCudaSession:
    def __init__(self, ort: FakeOrt, path: str, options: Any, providers: list[Any], **kwargs: Any) -> None:
        self.ort = ort
        self.providers = providers
        self.real = real_ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        cuda = dict(next(p[1] for p in providers if isinstance(p, tuple) and p[0] == "CUDAExecutionProvider"))
        self.graphs_enabled = cuda.get("enable_cuda_graph") == "1"
        if self.graphs_enabled and ort.refuse_at_open:
            raise RuntimeError(
                f"{CAPTURE_REFUSAL} as all compute graph nodes have not been partitioned to the {CUDA}"
            )
        self.captured: dict[str, _Binding] = {}
        self.runs: list[str | None] = []
        ort.sessions.append(self)

    def get_providers(self) -> list[str]:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def io_binding(self) -> _Binding:
        return _Binding(self.real.io_binding())

    def run_with_iobinding(self, binding: _Binding, run_options: Any = None) -> None:
        graph_id = None
        if run_options is not None:
            try:
                graph_id = run_options.get_run_config_entry("gpu_graph_id")
            except RuntimeError:  # no such entry
                graph_id = None
        self.runs.append(graph_id)
        if self.ort.fail_capture and self.graphs_enabled and graph_id not in (None, "-1"):
            raise RuntimeError(f"{CAPTURE_REFUSAL} as a node is assigned to CPUExecutionProvider")
        if not self.graphs_enabled or graph_id in (None, "-1"):
            self.real.run_with_iobinding(binding.real, run_options)
            return
        assert graph_id != "0", "gpu_graph_id 0 is reserved"
        captured = self.captured.setdefault(graph_id, binding)  # capture: the buffers of this run
        self.real.run_with_iobinding(captured.real)  # replay: the captured buffers, shapes unchecked

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class _OrtValueType(type):
    def __instancecheck__(cls, instance: Any) -> bool:  # the values made are real OrtValues
        return isinstance(instance, real_ort.OrtValue)


class _OrtValue(metaclass=_OrtValueType):
    """``onnxruntime.OrtValue`` with ``"cuda"`` buffers made in host memory."""

    @staticmethod
    def ortvalue_from_numpy(array: Any, device_type: str = "cpu", device_id: int = 0) -> Any:
        return real_ort.OrtValue.ortvalue_from_numpy(
            array, "cpu" if device_type == "cuda" else device_type, device_id
        )

    @staticmethod
    def ortvalue_from_shape_and_type(
        shape: Any, dtype: Any, device_type: str = "cpu", device_id: int = 0
    ) -> Any:
        return real_ort.OrtValue.ortvalue_from_shape_and_type(
            shape, dtype, "cpu" if device_type == "cuda" else device_type, device_id
        )


class FakeOrt:
    """The ``onnxruntime`` module as onnxruntime-gpu on a CUDA machine would show it."""

    def __init__(self, *, fail_capture: bool = False, refuse_at_open: bool = False) -> None:
        self.sessions: list[FakeCudaSession] = []
        self.severities: list[int] = []
        self.fail_capture = fail_capture  # at the first run with a graph id (a node on the CPU)
        self.refuse_at_open = refuse_at_open  # when the session opens, as onnxruntime 1.31 does
        self.OrtValue = _OrtValue

    def get_available_providers(self) -> list[str]:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def InferenceSession(self, path: str, options: Any = None, providers: Any = None, **kwargs: Any) -> Any:
        return FakeCudaSession(self, path, options, list(providers or []), **kwargs)

    def set_default_logger_severity(self, level: int) -> None:
        self.severities.append(level)
        real_ort.set_default_logger_severity(level)

    def __getattr__(self, name: str) -> Any:
        return getattr(real_ort, name)


def install(monkeypatch: Any, fake: FakeOrt) -> FakeOrt:
    """Make mmexport's onnxruntime backend see ``fake`` as the onnxruntime module."""
    from mmexport.runtime.backends.onnxrt import loader, runner

    monkeypatch.setattr(loader, "import_onnxruntime", lambda: fake)
    monkeypatch.setattr(runner, "import_onnxruntime", lambda: fake)
    return fake
