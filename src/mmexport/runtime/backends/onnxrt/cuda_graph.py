"""onnxruntime's CUDA graphs: one captured graph per set of input shapes, at fixed device addresses.

With ``enable_cuda_graph`` on the CUDA execution provider, a run through I/O binding whose inputs
and outputs are ``OrtValue``s at fixed device addresses is captured once and then replayed: the
kernel launches cost one graph launch. ``Session(..., device="cuda", options={"cuda_graph": True})``.

- Graphs are told apart by the run option ``gpu_graph_id`` (0 is reserved, -1 runs without
  capture or replay). onnxruntime does not check that a replayed id gets the shapes it was
  captured with (another shape under the same id replays the old graph, silently), so ids are
  keyed here by the inputs' shapes: each new set of shapes gets its own id, its own static input
  buffers (``ortvalue_from_shape_and_type``) and its own output buffers, up to ``MAX_GRAPHS``.
- Per call, host inputs are copied into the graph's buffers (``update_inplace``), the graph is
  replayed, and outputs are copied out (``run``) or left in the graph's buffers
  (``run_on_device``: valid until the next call at the same shapes).
- A captured graph is replayed by one thread at a time (a lock per graph): calls at different
  shapes run concurrently, calls at the same shapes take turns.
- The first call at new shapes runs once without capture (``gpu_graph_id`` -1: onnxruntime
  allocates the outputs, whose buffers are then kept), then captures. A model with control flow
  (If / Loop / Scan) or with nodes onnxruntime places on the CPU cannot be captured: control flow
  is refused when the session opens, naming the nodes; onnxruntime's own refusal is reported as
  one error line.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.errors import BackendError, InputError
from mmexport.core.onnx_file import read_onnx

MAX_GRAPHS = 16
"""Graphs (sets of input shapes) one session captures; each holds its own input and output buffers."""

CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})
NO_GRAPH_ID = "-1"
CAPTURE_HINT = (
    "every node must run on the CUDA execution provider (no If/Loop/Scan, no node onnxruntime "
    "places on the CPU); mmexport --debug shows onnxruntime's log; or run without cuda_graph"
)


def control_flow_nodes(path: Path) -> list[str]:
    """The graph's If / Loop / Scan nodes (``"Loop 'name'"``): nodes a CUDA graph cannot capture."""
    graph = read_onnx(path, external_data=False).graph
    return [f"{n.op_type} {n.name or '(unnamed)'!r}" for n in graph.node if n.op_type in CONTROL_FLOW]


def refuse_control_flow(path: Path) -> None:
    """``BackendError`` naming the control-flow nodes, before any session is opened."""
    nodes = control_flow_nodes(path)
    if nodes:
        shown = ", ".join(nodes[:5]) + (f" and {len(nodes) - 5} more" if len(nodes) > 5 else "")
        raise BackendError(
            "onnxruntime",
            f"cuda_graph cannot capture {path.name}: it has control flow ({shown})",
            hint="run it without cuda_graph, or export the model without data-dependent control flow",
        )


class _Graph:
    """One set of input shapes: its id, fixed buffers, binding, run options and lock."""

    __slots__ = ("binding", "captured", "inputs", "lock", "options", "outputs", "shapes")

    def __init__(self, shapes: tuple[tuple[int, ...], ...]) -> None:
        self.shapes = shapes
        self.lock = threading.Lock()
        self.captured = False
        self.binding: Any = None
        self.options: Any = None
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []


class CudaGraphs:
    """The graphs of one onnxruntime session opened with ``enable_cuda_graph``.

    ``device`` is onnxruntime's device name for the buffers (``"cuda"``); ``errors`` what a
    failed run raises (``loader.run_errors()``).
    """

    def __init__(
        self,
        ort: Any,
        session: Any,
        input_names: Sequence[str],
        output_names: Sequence[str],
        *,
        device: str = "cuda",
        device_id: int = 0,
        errors: tuple[type[BaseException], ...] = (RuntimeError,),
        limit: int | None = None,
    ) -> None:
        self._ort = ort
        self._session = session
        self._input_names = list(input_names)
        self._output_names = list(output_names)
        self._device, self._device_id = device, device_id
        self._errors = errors
        self._limit = MAX_GRAPHS if limit is None else limit
        self._graphs: dict[tuple[tuple[int, ...], ...], _Graph] = {}
        self._next_id = 1  # 0 is reserved by onnxruntime
        self._pool_lock = threading.Lock()

    @property
    def count(self) -> int:
        """Sets of input shapes captured (or being captured) so far."""
        return len(self._graphs)

    def graph_ids(self) -> dict[tuple[tuple[int, ...], ...], str]:
        """Input shapes (in input order) -> their ``gpu_graph_id``."""
        return {k: g.options.get_run_config_entry("gpu_graph_id") for k, g in self._graphs.items()}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copy host feeds in, replay (capturing first at new shapes), copy every output out."""
        graph = self._graph_for(feeds)
        with graph.lock:
            self._fill(graph, feeds)
            self._launch(graph)
            return dict(zip(self._output_names, graph.binding.copy_outputs_to_cpu(), strict=True))

    def run_on_device(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Like ``run`` (feeds: host arrays or ``OrtValue``s), outputs left in the graph's own
        device buffers (``OrtValue``): valid until the next call at the same shapes."""
        graph = self._graph_for(feeds)
        with graph.lock:
            self._fill(graph, feeds)
            self._launch(graph)
            return dict(zip(self._output_names, graph.outputs, strict=True))

    def close(self) -> None:
        """Drop every graph's buffers and bindings."""
        with self._pool_lock:
            self._graphs.clear()

    # -- graphs -------------------------------------------------------------------------------

    def _graph_for(self, feeds: Mapping[str, Any]) -> _Graph:
        shapes = tuple(_shape(feeds[name]) for name in self._input_names)
        graph = self._graphs.get(shapes)
        if graph is not None:
            return graph
        with self._pool_lock:
            graph = self._graphs.get(shapes)
            if graph is None:
                graph = self._graphs[shapes] = self._new_graph(shapes, feeds)
        return graph

    def _new_graph(self, shapes: tuple[tuple[int, ...], ...], feeds: Mapping[str, Any]) -> _Graph:
        if len(self._graphs) >= self._limit:
            given = ", ".join(f"{n} {list(s)}" for n, s in zip(self._input_names, shapes, strict=True))
            raise InputError(
                None,
                f"cuda_graph: new input shapes ({given}) would make graph {len(self._graphs) + 1}; "
                f"a session captures at most {self._limit}",
                expected=self._limit,
                actual=len(self._graphs) + 1,
                hint="feed a few fixed shapes (pad to a few batch sizes), or run without cuda_graph",
            )
        ort = self._ort
        graph = _Graph(shapes)
        graph.binding = self._session.io_binding()
        for name, shape in zip(self._input_names, shapes, strict=True):
            value = ort.OrtValue.ortvalue_from_shape_and_type(
                shape, _dtype(feeds[name]), self._device, self._device_id
            )
            graph.binding.bind_ortvalue_input(name, value)
            graph.inputs.append(value)
        for name in self._output_names:
            graph.binding.bind_output(name, self._device, self._device_id)
        graph.options = ort.RunOptions()
        graph.options.add_run_config_entry("gpu_graph_id", str(self._next_id))
        self._next_id += 1
        return graph

    def _fill(self, graph: _Graph, feeds: Mapping[str, Any]) -> None:
        """Copy each feed into its fixed buffer: a host array (made C-contiguous by onnxruntime),
        or an ``OrtValue``, copied device to device where onnxruntime can (``update_inplace``
        takes OrtValues since 1.32)."""
        for name, buffer in zip(self._input_names, graph.inputs, strict=True):
            value = feeds[name]
            if type(value) is np.ndarray:
                buffer.update_inplace(value)
                continue
            try:
                buffer.update_inplace(value)
            except (TypeError, ValueError) as e:
                raise BackendError(
                    "onnxruntime",
                    f"cannot copy input {name!r} ({type(value).__name__}) into the CUDA graph's buffer: "
                    f"{_first_line(e)}",
                    hint="pass host arrays (this onnxruntime's update_inplace takes numpy arrays only), "
                    "or open the session without cuda_graph to bind device data in place",
                ) from e

    def _launch(self, graph: _Graph) -> None:
        if graph.captured:
            try:
                self._session.run_with_iobinding(graph.binding, graph.options)
            except self._errors as e:
                raise BackendError("onnxruntime", f"CUDA graph replay failed: {_first_line(e)}") from e
            return
        try:
            plain = self._ort.RunOptions()
            plain.add_run_config_entry("gpu_graph_id", NO_GRAPH_ID)
            self._session.run_with_iobinding(graph.binding, plain)  # onnxruntime allocates the outputs
            graph.outputs = list(graph.binding.get_outputs())
            for name, value in zip(self._output_names, graph.outputs, strict=True):
                graph.binding.bind_ortvalue_output(name, value)  # kept: their addresses are captured
            self._session.run_with_iobinding(graph.binding, graph.options)  # captures (and runs)
        except self._errors as e:
            with self._pool_lock:
                self._graphs.pop(graph.shapes, None)
            raise BackendError(
                "onnxruntime", f"cannot capture a CUDA graph: {_first_line(e)}", hint=CAPTURE_HINT
            ) from e
        graph.captured = True


def _shape(value: Any) -> tuple[int, ...]:
    return value.shape if type(value) is np.ndarray else tuple(value.shape())


def _dtype(value: Any) -> Any:
    """A host array's dtype, or an OrtValue's element type (a numpy type)."""
    return value.dtype if type(value) is np.ndarray else value.element_type()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
