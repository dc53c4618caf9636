"""torch -> ONNX with the spec's named dims dynamic, then checks of the exported graph."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from mmexport.core.errors import ExportError, FrozenDimError, SpecError
from mmexport.core.onnx_file import read_onnx
from mmexport.core.spec import ModelSpec, OutputSpec
from mmexport.export.failures import captured_output, explain_failure
from mmexport.export.loader import forward_order
from mmexport.export.parity import NotTensorsError, torch_outputs
from mmexport.export.torch_runner import SpecCall, flatten_outputs, pick_outputs

# Opset 18: the lowest opset torch's dynamo exporter emits, and one that every TensorRT
# generation we target parses -- TensorRT 10.0-10.3 (JetPack 6) read opsets 9-20, 10.15 up to
# 24, and 11.x all of these. A lower opset is not available from dynamo; a higher one buys
# nothing for these models and risks ops (e.g. opset 20's Gelu) that older parsers lack.
DEFAULT_OPSET = 18
EXPORTERS = ("dynamo", "torchscript")
# Protobuf caps one file at 2 GiB; above this many bytes of weights we write external data.
SINGLE_FILE_LIMIT = 1_800_000_000


@dataclass(frozen=True)
class ExportConfig:
    """How to run torch.onnx."""

    exporter: str = "dynamo"
    opset: int = DEFAULT_OPSET

    def __post_init__(self) -> None:
        if self.exporter not in EXPORTERS:
            raise ExportError(f"unknown exporter {self.exporter!r}", hint="dynamo or torchscript")
        low = 18 if self.exporter == "dynamo" else 9
        if not low <= self.opset <= 23:
            raise ExportError(
                f"opset {self.opset} is outside what the {self.exporter} exporter writes ({low}-23)"
            )


@dataclass
class ExportInfo:
    path: Path
    external_data: bool
    opset: int
    exporter: str
    unused_inputs: list[str]
    """Spec inputs the model never reads (absent from the graph, or read by no node)."""
    model: onnx.ModelProto | None = None
    """The graph as written, weights included (None when they went to an external data file)."""
    notes: list[str] = field(default_factory=list)
    """What the user should know about the export (e.g. paths a TorchScript trace fixed)."""


def check_outputs(module: torch.nn.Module, spec: ModelSpec, feed: dict[str, np.ndarray]) -> None:
    """Run the model once in eager mode: it must run and return a tensor for each output of the spec."""
    try:
        outputs = torch_outputs(module, feed, names=spec.output_names, call_kwargs=spec.call_kwargs)
    except NotTensorsError as e:
        raise ExportError(
            f"{e}; forward() must return a tensor, a tuple/list of tensors, or a dict (ModelOutput, "
            "namedtuple) holding the spec's outputs by name"
        ) from e
    except Exception as e:
        shapes = ", ".join(f"{n}={list(v.shape)}" for n, v in feed.items())
        raise ExportError(
            f"the model fails in PyTorch on the spec's example inputs ({shapes}): "
            f"{type(e).__name__}: {_first_line(e)}",
            hint="check the spec's shapes and dtypes against the model",
        ) from e
    if len(outputs) != len(spec.outputs):
        raise SpecError(
            f"the model returns {len(outputs)} tensor(s) but the spec names {len(spec.outputs)} "
            f"output(s) ({', '.join(spec.output_names)})"
        )
    point = spec.example_point()  # the point ``feed`` was drawn at
    for out, value in zip(spec.outputs, outputs, strict=True):
        if out.shape is not None:
            _check_declared_shape(out, tuple(value.shape), point)


def _check_declared_shape(out: OutputSpec, actual: tuple[int, ...], point: Mapping[str, int]) -> None:
    """An output's declared ``shape`` must be what the model returns at the example point."""
    expected = [point[d] if isinstance(d, str) else d for d in out.shape or ()]
    agree = len(expected) == len(actual) and all(
        e is None or e == a for e, a in zip(expected, actual, strict=True)
    )
    if not agree:
        shown = ", ".join(f"{d}={point[d]}" if isinstance(d, str) else str(d) for d in out.shape or ())
        raise SpecError(
            f"the model returns shape {list(actual)} but the spec declares [{shown}]",
            where=f"output {out.name!r}",
            hint="null stands for a dim the spec does not name",
        )


def export_onnx(
    module: torch.nn.Module, spec: ModelSpec, path: Path, config: ExportConfig | None = None
) -> ExportInfo:
    """Export ``module`` to ``path`` and make every dynamic dim of the spec symbolic and named."""
    config = config or ExportConfig()
    # the opt point with dynamic dims >= 2, in forward()'s parameter order
    feed = spec.sample_feed(spec.example_point(), seed=0)
    check_outputs(module, spec, feed)
    inputs = {n: torch.from_numpy(feed[n]) for n in forward_order(module, spec)}
    target = exported_module(module, spec, inputs)
    external = _parameter_bytes(module) > SINGLE_FILE_LIMIT
    with captured_output() as log:
        try:
            if config.exporter == "dynamo":
                _export_dynamo(target, spec, inputs, path, config.opset, external)
            else:
                _export_torchscript(target, spec, inputs, path, config.opset)
        except ExportError:
            raise
        except Exception as e:
            raise explain_failure(e, exporter=config.exporter, log=log) from e
        if not path.exists():
            raise ExportError(f"torch.onnx wrote no file; its log: {log.text()[-500:]}")
    unused, model = _normalize(path, spec, external)
    info = ExportInfo(path, external, config.opset, config.exporter, unused, None if external else model)
    info.notes = log.trace_notes()
    return info


def exported_module(
    module: torch.nn.Module, spec: ModelSpec, inputs: dict[str, torch.Tensor]
) -> torch.nn.Module:
    """``module`` itself when the exporters can call it as it is; else a ``SpecCall`` around it.

    The adapter is needed for constant ``call_kwargs``, for inputs that forward() takes only by
    keyword (or through ``**kwargs``), and for results the spec's outputs are picked from by name
    or that hold more than them. Plain models are exported unwrapped, their node names unchanged.
    """
    if spec.call_kwargs or not _positional(module, list(inputs)):
        return SpecCall(module, spec, list(inputs))
    with torch.inference_mode():
        result = module(**inputs)
    try:
        plain = flatten_outputs(result)
    except NotTensorsError:
        return SpecCall(module, spec, list(inputs))
    picked = pick_outputs(result, spec.output_names)
    same = len(plain) == len(picked) and all(a is b for a, b in zip(plain, picked, strict=True))
    return module if same else SpecCall(module, spec, list(inputs))


def _positional(module: torch.nn.Module, order: list[str]) -> bool:
    """Whether forward() takes ``order`` as its leading positional parameters, in that order."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return True
    leading = [p.name for p in params[: len(order)] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return leading == order


def _clear_rnn_dispatch_caches() -> None:
    """Forget cached kernels of the RNN ops before a dynamo export.

    torch.onnx swaps in while-loop decompositions of GRU/LSTM (torch.export._patches) by editing
    ``py_kernels`` directly, which leaves the op's dispatch cache pointing at the kernel of the
    previous export. Seen with torch 2.13: the second export of a GRU model in one process froze
    its sequence dim to the example size. Clearing the caches makes every export start equal.
    """
    for name in ("gru", "lstm", "rnn_tanh", "rnn_relu"):
        packet = getattr(torch.ops.aten, name, None)
        for overload in ("input", "data"):
            op = getattr(packet, overload, None) if packet is not None else None
            cache = getattr(op, "_dispatch_cache", None)
            if isinstance(cache, dict):
                cache.clear()


def _require_dynamo_exporter() -> None:
    """torch.onnx.export gained dynamo=, dynamic_shapes= and external_data= over torch 2.5-2.6."""
    params = inspect.signature(torch.onnx.export).parameters
    missing = [p for p in ("dynamo", "dynamic_shapes", "external_data") if p not in params]
    if missing:
        raise ExportError(
            f"torch {torch.__version__} has no dynamo exporter options ({', '.join(missing)})",
            hint="upgrade torch (2.6 or newer), or use --exporter torchscript",
        )


def _export_dynamo(
    module: torch.nn.Module,
    spec: ModelSpec,
    inputs: dict[str, torch.Tensor],
    path: Path,
    opset: int,
    external: bool,
) -> None:
    _require_dynamo_exporter()
    _clear_rnn_dispatch_caches()
    dims = {d.name: torch.export.Dim(d.name, min=d.min, max=d.max) for d in spec.dynamic_dims}
    dynamic_shapes: dict[str, Any] = {
        i.name: {axis: dims[d] for axis, d in enumerate(i.shape) if d in dims} or None
        for i in (spec.input(n) for n in inputs)
    }
    # SpecCall takes *args: its inputs go positionally, their dynamic shapes as one tuple
    wrapped = isinstance(module, SpecCall)
    torch.onnx.export(
        module,
        tuple(inputs.values()) if wrapped else (),
        str(path),
        kwargs=None if wrapped else inputs,
        dynamo=True,
        dynamic_shapes=(tuple(dynamic_shapes.values()),) if wrapped else dynamic_shapes,
        input_names=list(inputs),
        output_names=spec.output_names,
        opset_version=opset,
        external_data=external,
        optimize=True,
        verbose=False,
    )


def _export_torchscript(
    module: torch.nn.Module, spec: ModelSpec, inputs: dict[str, torch.Tensor], path: Path, opset: int
) -> None:
    dynamic = {d.name for d in spec.dynamic_dims}
    dynamic_axes = {
        i.name: {axis: d for axis, d in enumerate(i.shape) if d in dynamic}
        for i in (spec.input(n) for n in inputs)
    }
    # The TorchScript exporter freezes every output axis it is not told about (logits [4, 9] from a
    # batch-4 trace), so the outputs' dynamic axes are found by running the model eagerly.
    dynamic_axes.update(output_dim_axes(module, spec, list(inputs)))
    # torch before 2.5 has no dynamo= and exports with TorchScript anyway
    legacy: dict[str, Any] = (
        {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    )
    torch.onnx.export(
        module,
        tuple(inputs.values()),
        str(path),
        **legacy,
        input_names=list(inputs),
        output_names=spec.output_names,
        dynamic_axes={k: v for k, v in dynamic_axes.items() if v},
        opset_version=opset,
        do_constant_folding=True,
    )


def output_dim_axes(module: torch.nn.Module, spec: ModelSpec, order: list[str]) -> dict[str, dict[int, str]]:
    """Output name -> {axis: spec dim} for the output axes that follow a dynamic dim of the spec.

    The model runs eagerly at the example point and once more with each dynamic dim moved by one
    inside its range; an output axis whose size changes with exactly that dim (and with no other)
    follows it. Axes whose size changes with several dims (e.g. a flattened sequence) are left
    as the exporter writes them.
    """
    base_point = spec.example_point()
    inner = module.module if isinstance(module, SpecCall) else module

    def shapes(point: Mapping[str, int]) -> list[tuple[int, ...]]:
        feed = spec.sample_feed(point, seed=0)
        outputs = torch_outputs(
            inner, {n: feed[n] for n in order}, names=spec.output_names, call_kwargs=spec.call_kwargs
        )
        return [tuple(o.shape) for o in outputs]

    base = shapes(base_point)
    follows: dict[tuple[int, int], list[str]] = {}
    for dim in spec.dynamic_dims:
        value = base_point[dim.name]
        moved = value + 1 if value < dim.max else value - 1
        if moved < dim.min or moved == value:
            continue
        for index, (before, after) in enumerate(
            zip(base, shapes({**base_point, dim.name: moved}), strict=True)
        ):
            if len(before) != len(after):
                continue
            for axis, (a, b) in enumerate(zip(before, after, strict=True)):
                if a != b:
                    follows.setdefault((index, axis), []).append(dim.name)
    axes: dict[str, dict[int, str]] = {}
    for (index, axis), dims in follows.items():
        if len(dims) == 1 and base[index][axis] == base_point[dims[0]]:
            axes.setdefault(spec.output_names[index], {})[axis] = dims[0]
    dynamic = {d.name for d in spec.dynamic_dims}
    for out in spec.outputs:  # a declared shape names its axes itself
        if out.shape is not None:
            axes[out.name] = {a: d for a, d in enumerate(out.shape) if isinstance(d, str) and d in dynamic}
    return axes


def normalize_dims(path: Path, spec: ModelSpec, external: bool) -> list[str]:
    """Name each dynamic input axis after its spec dim; refuse an axis the exporter froze.

    Returns the spec inputs that the model never reads (not in the graph, or read by no node).
    """
    return _normalize(path, spec, external)[0]


def _normalize(path: Path, spec: ModelSpec, external: bool) -> tuple[list[str], onnx.ModelProto]:
    """``normalize_dims``, also returning the model it wrote."""
    model = read_onnx(path, external_data=False)
    graph_inputs = {i.name: i for i in model.graph.input}
    symbols: dict[str, str] = {}  # the exporter's symbol -> the spec dim it stands for
    unused: list[str] = []
    consumed = {name for node in model.graph.node for name in node.input}
    consumed |= {o.name for o in model.graph.output}
    for inp in spec.inputs:
        if inp.name not in graph_inputs or inp.name not in consumed:
            unused.append(inp.name)
        if inp.name not in graph_inputs:
            continue
        dims = graph_inputs[inp.name].type.tensor_type.shape.dim
        if len(dims) != len(inp.shape):
            raise ExportError(
                f"input {inp.name!r} has rank {len(dims)} in the graph, {len(inp.shape)} in the spec"
            )
        for axis, (dim, want) in enumerate(zip(dims, inp.shape, strict=True)):
            if isinstance(want, int) or not spec.dims[want].dynamic:
                continue
            if dim.HasField("dim_value"):
                raise FrozenDimError(inp.name, axis, want, dim.dim_value)
            other = symbols.setdefault(dim.dim_param, want)
            if other != want:
                raise SpecError(
                    f"dims {other!r} and {want!r} must be equal for this model (the exporter "
                    f"merged them into one symbol, {dim.dim_param!r})",
                    hint=f"use one dim name for both, e.g. {other!r} in input {inp.name!r}",
                )
            dim.dim_param = want
    if external:
        onnx.save(model, str(path), save_as_external_data=True, location=f"{path.name}.data")
    else:
        onnx.save(model, str(path))
    return unused, model


def _parameter_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def dim_values(path: str | Path) -> dict[str, list[int | str]]:
    """Input name -> shape as the graph declares it (ints and symbolic names)."""
    model = read_onnx(path, external_data=False)
    return {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input
    }


__all__ = ["DEFAULT_OPSET", "ExportConfig", "ExportInfo", "dim_values", "export_onnx"]
