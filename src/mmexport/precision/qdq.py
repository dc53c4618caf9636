"""Insert INT8 QuantizeLinear/DequantizeLinear pairs the way the target runtime fuses them.

What is quantized (TensorRT's and ModelOpt's practice, see TENSORRT.md): weighted ops only, i.e.
Conv, ConvTranspose, Gemm and MatMul with a constant weight. A MatMul of two activations
(attention's Q x K^T and softmax x V) stays float: its inputs are bounded or sharply peaked
(softmax probabilities), clipping them costs accuracy, and it has no weight to save memory on.

Layouts (``layout``):
- ``tensorrt`` (default): Q/DQ on the inputs of quantized ops only; their outputs stay float, so
  TensorRT fuses each DQ -> op into an INT8 kernel and picks the output precision itself;
- ``onnxruntime``: also a Q/DQ on each quantized op's output and an INT32 bias, the pattern
  onnxruntime's graph optimizer rewrites into QLinearConv / QLinearMatMul / QGemm.

Both: activations per tensor, symmetric (zero point 0), INT8, scale = amax / 127; weights
(initializers) per channel along the output axis, stored as INT8 with a DequantizeLinear;
standard-domain ops only (opset >= 13 for per-axis scales).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from mmexport.core.errors import ConfigError, MmexportError
from mmexport.core.onnx_mapped import MappedModel, graph_proto, inline_tensor
from mmexport.precision.graph import weightless
from mmexport.precision.stats import QUANT_LEVELS, TensorStats

QUANTIZED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
MIN_OPSET = 13
LAYOUTS = ("tensorrt", "onnxruntime")
DEFAULT_LAYOUT = "tensorrt"
# Ops whose output range is known: their quantized outputs take the observed maximum, never a
# clipped one (entropy calibration cuts the rare large softmax probabilities that matter most).
BOUNDED_OPS = ("Softmax", "Sigmoid", "Tanh", "HardSigmoid", "Erf")
# onnxruntime layout: a Conv reading fewer channels (an RGB stem) is slower as QLinearConv than in
# float on the CPU (measured: seed's stem alone made its INT8 model 1.4x slower), so it stays float.
MIN_ORT_CONV_CHANNELS = 16
ORT_STEM_REASON = f"fewer than {MIN_ORT_CONV_CHANNELS} input channels: faster in float on onnxruntime"


@dataclass
class QdqResult:
    model: onnx.ModelProto
    quantized_nodes: list[str] = field(default_factory=list)
    activation_scales: dict[str, float] = field(default_factory=dict)  # tensor -> scale
    skipped: dict[str, str] = field(default_factory=dict)  # node -> why it stayed float


def constant_names(model: onnx.ModelProto) -> set[str]:
    """Initializers and Constant node outputs: the tensors that are weights, not activations."""
    names = {init.name for init in model.graph.initializer}
    names.update(o for n in model.graph.node if n.op_type == "Constant" for o in n.output)
    return names


def is_weighted(node: onnx.NodeProto, constants: Collection[str]) -> bool:
    """A Conv/ConvTranspose/Gemm/MatMul whose weight (input 1, or MatMul's input 0) is constant."""
    if node.op_type not in QUANTIZED_OPS or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
        return False
    if node.input[1] in constants:
        return True
    return node.op_type == "MatMul" and node.input[0] in constants


def quantizable_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The weighted ops the default INT8 variant quantizes, in graph order."""
    constants = constant_names(model)
    return [n for n in model.graph.node if is_weighted(n, constants)]


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}", fields=("layout",))
    return layout


def quantized_tensors(
    model: onnx.ModelProto, nodes: Collection[str] | None = None, layout: str = DEFAULT_LAYOUT
) -> list[str]:
    """The activation tensors ``insert_qdq`` would quantize for ``nodes`` (default: the weighted
    ops): the ones that need calibration statistics, in graph order."""
    check_layout(layout)
    constants = constant_names(model)
    outputs = {o.name for o in model.graph.output}
    chosen = _chosen_nodes(model, nodes, constants)
    shapes = {init.name: list(init.dims) for init in model.graph.initializer}
    names: dict[str, None] = {}
    for node in model.graph.node:
        if node.name not in chosen or (layout == "onnxruntime" and _small_conv(node, shapes)):
            continue
        for index in _data_inputs(node):
            if node.input[index] not in constants:
                names[node.input[index]] = None
        if layout == "onnxruntime" and node.output[0] not in outputs:
            names[node.output[0]] = None
    return list(names)


def _chosen_nodes(
    model: onnx.ModelProto, nodes: Collection[str] | None, constants: Collection[str]
) -> set[str]:
    if nodes is None:
        return {n.name for n in model.graph.node if is_weighted(n, constants)}
    return {n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS and n.name in nodes}


def _small_conv(node: onnx.NodeProto, shapes: Mapping[str, list[int]]) -> bool:
    """A Conv whose weight [out, in / group, ...] reads fewer than MIN_ORT_CONV_CHANNELS channels."""
    weight = shapes.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
    return weight is not None and len(weight) > 1 and weight[1] < MIN_ORT_CONV_CHANNELS


def _data_inputs(node: onnx.NodeProto) -> list[int]:
    return [0] if node.op_type in ("Conv", "ConvTranspose") else [0, 1]


def choose_ranges(
    model: onnx.ModelProto, stats: Mapping[str, TensorStats], method: str, percentile: float
) -> dict[str, float]:
    """Each observed tensor's clipping range: ``method``'s, except for the outputs of bounded ops
    (``BOUNDED_OPS``), which keep their observed maximum."""
    bounded = {o for n in model.graph.node if n.op_type in BOUNDED_OPS for o in n.output}
    return {
        name: s.range_amax("minmax" if name in bounded else method, percentile) for name, s in stats.items()
    }


def weight_axis(node: onnx.NodeProto, weight: np.ndarray) -> int:
    """The output-channel axis of ``node``'s weight (input 1)."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return weight.ndim - 1  # MatMul: [..., K, N]


class _Weights(dict[str, onnx.TensorProto]):
    """A model's initializers by name; ``array`` reads one's values (from the model's file when
    the tensor is a reference into it: a ``MappedModel``'s weights)."""

    def __init__(self, tensors: Iterable[onnx.TensorProto], base_dir: str = "") -> None:
        super().__init__((t.name, t) for t in tensors)
        self.base_dir = base_dir

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self[name], base_dir=self.base_dir)


def insert_qdq(
    model: onnx.ModelProto | MappedModel,
    amax: Mapping[str, float],
    *,
    nodes: Collection[str] | None = None,
    layout: str = DEFAULT_LAYOUT,
) -> QdqResult:
    """A copy of ``model`` with Q/DQ on the inputs of ``nodes`` (default: the weighted ops; a
    named activation x activation MatMul is quantized too), laid out for ``layout``.

    ``amax`` gives each activation tensor's clipping range. A node whose activation has no range
    (or a zero range) stays float and is listed in ``skipped`` with the reason.
    """
    check_layout(layout)
    mapped = model if isinstance(model, MappedModel) else None
    model = graph_proto(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise MmexportError(
            f"INT8 Q/DQ needs opset >= {MIN_OPSET} (per-channel scales); this model has opset {opset}",
            hint="re-export with mmexport to-onnx --opset 18",
        )
    # a copy without the weights' values (the graph, names, types and dims): the weights are read
    # from ``model``, and only those still used as they are once Q/DQ is in are copied, at the end
    out = weightless(model, keep=0)
    graph = out.graph
    # read only: the values (a mapped model's from its file)
    inits = _Weights(model.graph.initializer, str(mapped.folder) if mapped else "")
    chosen = _chosen_nodes(model, nodes, constant_names(model))
    graph_outputs = {o.name for o in graph.output}
    result = QdqResult(model=out)
    new_nodes: list[onnx.NodeProto] = []
    dequantized: dict[str, str] = {}  # float tensor -> its dequantized copy
    requantized: dict[str, str] = {}  # onnxruntime layout: quantized op output -> its Q/DQ copy
    shapes = {name: list(init.dims) for name, init in inits.items()}
    for node in list(graph.node):
        done = False
        if node.name in chosen and layout == "onnxruntime" and _small_conv(node, shapes):
            result.skipped[node.name] = ORT_STEM_REASON
        elif node.name in chosen:
            why = _quantize_node(node, inits, amax, dequantized, new_nodes, graph, result, layout)
            if why:
                result.skipped[node.name] = why
            else:
                result.quantized_nodes.append(node.name)
                done = True
        for index, name in enumerate(node.input):
            if name in requantized:
                node.input[index] = requantized[name]
        new_nodes.append(node)
        output = node.output[0] if node.output else ""
        if done and layout == "onnxruntime" and output not in graph_outputs:
            value = amax.get(output)
            if value is not None and np.isfinite(value) and value > 0.0:
                scale = float(value) / QUANT_LEVELS
                requantized[output] = dequantized[output] = _add_activation_qdq(
                    output, scale, graph, new_nodes
                )
                result.activation_scales[output] = scale
    del graph.node[:]
    graph.node.extend(new_nodes)
    _drop_unused_initializers(graph)
    _fill_weights(graph, inits)
    if mapped:
        mapped.check_unchanged()  # the weights read from the file are the graph's
    return result


def _fill_weights(graph: onnx.GraphProto, source: _Weights) -> None:
    """Give the initializers ``graph`` has of ``source``'s (the weights left float: norms, biases,
    embeddings, ops not quantized) their values, one tensor at a time (read from the file where
    they lie there); those made here keep theirs."""
    skeletons = {init.name: init for init in graph.initializer if not _has_values(init)}
    for name, init in source.items():
        target = skeletons.pop(name, None)
        if target is None:
            continue
        target.CopyFrom(inline_tensor(init, source.base_dir) if source.base_dir else init)


def _has_values(tensor: onnx.TensorProto) -> bool:
    return bool(
        tensor.raw_data
        or tensor.data_location == onnx.TensorProto.EXTERNAL
        or any(
            len(getattr(tensor, f))
            for f in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")
        )
    )


def _quantize_node(
    node: onnx.NodeProto,
    inits: _Weights,
    amax: Mapping[str, float],
    dequantized: dict[str, str],
    new_nodes: list[onnx.NodeProto],
    graph: onnx.GraphProto,
    result: QdqResult,
    layout: str,
) -> str | None:
    """Rewire ``node``'s inputs through Q/DQ; returns why not, or None when done."""
    plan: dict[int, str] = {}
    for index in _data_inputs(node):
        name = node.input[index]
        if name in inits:
            plan[index] = "weight"
            continue
        if name in dequantized:
            plan[index] = "activation"
            continue
        value = amax.get(name)
        if value is None or not np.isfinite(value) or value <= 0.0:
            return f"no calibration range for {name!r}"
        plan[index] = "activation"
    if node.op_type in ("Conv", "ConvTranspose") and node.input[1] in inits:
        plan[1] = "weight"
    if all(kind == "weight" for kind in plan.values()):
        return "all its inputs are constants"
    weight_scale: np.ndarray | None = None
    input_scale = result.activation_scales.get(node.input[0])  # None until quantized below
    for index, kind in plan.items():
        name = node.input[index]
        if kind == "weight":
            weight = inits.array(name).astype(np.float32)
            axis = _weight_axis(node, index, weight)
            if name not in dequantized:
                dequantized[name] = _add_weight_dq(name, weight, axis, graph, new_nodes)
            weight_scale = per_channel_scale(weight, axis)
        elif name not in dequantized:
            scale = float(amax[name]) / QUANT_LEVELS
            dequantized[name] = _add_activation_qdq(name, scale, graph, new_nodes)
            result.activation_scales[name] = scale
        if index == 0 and kind == "activation":
            input_scale = result.activation_scales[name]
        node.input[index] = dequantized[name]
    if layout == "onnxruntime" and weight_scale is not None and input_scale is not None:
        _quantize_bias(node, inits, input_scale, weight_scale, graph, new_nodes)
    return None


def _weight_axis(node: onnx.NodeProto, index: int, weight: np.ndarray) -> int:
    """The output-channel axis of the weight at input ``index`` (MatMul's constant input 0: rows)."""
    if node.op_type == "MatMul" and index == 0:
        return max(weight.ndim - 2, 0)
    return weight_axis(node, weight)


def _quantize_bias(
    node: onnx.NodeProto,
    inits: _Weights,
    input_scale: float,
    weight_scale: np.ndarray,
    graph: onnx.GraphProto,
    new_nodes: list[onnx.NodeProto],
) -> None:
    """INT32 bias with scale = input scale x weight scale (onnxruntime's QLinearConv / QGemm need it)."""
    if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3 or node.input[2] not in inits:
        return
    bias = inits.array(node.input[2]).astype(np.float64)
    if bias.ndim != 1 or bias.shape[0] != weight_scale.shape[0]:
        return
    scale = (input_scale * weight_scale.astype(np.float64)).astype(np.float32)
    quantized = np.clip(np.round(bias / scale), -(2**31), 2**31 - 1).astype(np.int32)
    name = node.input[2]
    q_name, scale_name, zero_name = f"{name}_quantized", f"{name}_scale", f"{name}_zero_point"
    dq = f"{name}_DequantizeLinear"
    if q_name not in inits:  # a bias shared by two ops is quantized once (same scales)
        inits[q_name] = numpy_helper.from_array(quantized, q_name)
        graph.initializer.append(inits[q_name])
        graph.initializer.append(numpy_helper.from_array(scale, scale_name))
        graph.initializer.append(numpy_helper.from_array(np.zeros(scale.shape, dtype=np.int32), zero_name))
        dequantize = helper.make_node(
            "DequantizeLinear", [q_name, scale_name, zero_name], [f"{dq}_Output"], name=dq, axis=0
        )
        new_nodes.append(dequantize)
    node.input[2] = f"{dq}_Output"


def _add_activation_qdq(
    name: str, scale: float, graph: onnx.GraphProto, new_nodes: list[onnx.NodeProto]
) -> str:
    scale_name, zero_name = f"{name}_scale", f"{name}_zero_point"
    graph.initializer.append(numpy_helper.from_array(np.array(scale, dtype=np.float32), scale_name))
    graph.initializer.append(numpy_helper.from_array(np.array(0, dtype=np.int8), zero_name))
    q, dq = f"{name}_QuantizeLinear", f"{name}_DequantizeLinear"
    new_nodes.append(
        helper.make_node("QuantizeLinear", [name, scale_name, zero_name], [f"{q}_Output"], name=q)
    )
    new_nodes.append(
        helper.make_node(
            "DequantizeLinear", [f"{q}_Output", scale_name, zero_name], [f"{dq}_Output"], name=dq
        )
    )
    return f"{dq}_Output"


def _add_weight_dq(
    name: str, weight: np.ndarray, axis: int, graph: onnx.GraphProto, new_nodes: list[onnx.NodeProto]
) -> str:
    scale = per_channel_scale(weight, axis)
    shape = [1] * weight.ndim
    shape[axis] = -1
    quantized = np.clip(np.round(weight / scale.reshape(shape)), -QUANT_LEVELS, QUANT_LEVELS).astype(np.int8)
    q_name, scale_name, zero_name = f"{name}_quantized", f"{name}_scale", f"{name}_zero_point"
    graph.initializer.append(numpy_helper.from_array(quantized, q_name))
    graph.initializer.append(numpy_helper.from_array(scale.astype(np.float32), scale_name))
    graph.initializer.append(numpy_helper.from_array(np.zeros(scale.shape, dtype=np.int8), zero_name))
    dq = f"{name}_DequantizeLinear"
    new_nodes.append(
        helper.make_node(
            "DequantizeLinear", [q_name, scale_name, zero_name], [f"{dq}_Output"], name=dq, axis=axis
        )
    )
    return f"{dq}_Output"


def per_channel_scale(weight: np.ndarray, axis: int) -> np.ndarray:
    """Symmetric INT8 scale per slice along ``axis`` (1.0 for an all-zero channel)."""
    moved = np.moveaxis(np.abs(weight), axis, 0).reshape(weight.shape[axis], -1)
    amax = moved.max(axis=1) if moved.size else np.zeros(weight.shape[axis], dtype=np.float32)
    return np.where(amax > 0, amax / QUANT_LEVELS, 1.0).astype(np.float32)


def _used_names(graph: onnx.GraphProto) -> set[str]:
    """Tensor names read anywhere in ``graph``, subgraphs (If/Loop/Scan bodies) included."""
    used = {o.name for o in graph.output}
    for node in graph.node:
        used.update(node.input)
        for attr in node.attribute:
            for sub in [attr.g, *attr.graphs] if attr.HasField("g") else attr.graphs:
                used |= _used_names(sub)
    return used


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = _used_names(graph)
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
