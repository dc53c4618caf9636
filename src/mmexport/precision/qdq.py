"""Insert INT8 QuantizeLinear/DequantizeLinear pairs the way TensorRT 10 and 11 expect them.

Rules (TensorRT's explicit quantization, see TENSORRT.md):
- only the inputs of Conv, ConvTranspose, Gemm and MatMul are quantized; their outputs are not;
- activations per tensor, symmetric (zero point 0), INT8, scale = amax / 127;
- weights (initializers) per channel along the output axis, stored as INT8 with a
  DequantizeLinear, scale = per-channel amax / 127; biases stay float;
- standard-domain ops only (opset >= 13 for per-axis scales).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from mmexport.core.errors import MmexportError
from mmexport.precision.stats import QUANT_LEVELS

QUANTIZED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
MIN_OPSET = 13


@dataclass
class QdqResult:
    model: onnx.ModelProto
    quantized_nodes: list[str] = field(default_factory=list)
    activation_scales: dict[str, float] = field(default_factory=dict)  # tensor -> scale
    skipped: dict[str, str] = field(default_factory=dict)  # node -> why it stayed float


def quantizable_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type in QUANTIZED_OPS and n.domain in ("", "ai.onnx")]


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


def insert_qdq(
    model: onnx.ModelProto,
    amax: Mapping[str, float],
    *,
    nodes: Collection[str] | None = None,
) -> QdqResult:
    """A copy of ``model`` with Q/DQ on the inputs of the quantizable ``nodes`` (default: all).

    ``amax`` gives each activation tensor's clipping range. A node whose activation has no range
    (or a zero range) stays float and is listed in ``skipped`` with the reason.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise MmexportError(
            f"INT8 Q/DQ needs opset >= {MIN_OPSET} (per-channel scales); this model has opset {opset}",
            hint="re-export with mmexport to-onnx --opset 18",
        )
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {init.name: init for init in graph.initializer}
    result = QdqResult(model=out)
    new_nodes: list[onnx.NodeProto] = []
    dequantized: dict[str, str] = {}  # float tensor -> its dequantized copy
    for node in list(graph.node):
        if node.op_type in QUANTIZED_OPS and (nodes is None or node.name in nodes):
            why = _quantize_node(node, inits, amax, dequantized, new_nodes, graph, result)
            if why:
                result.skipped[node.name] = why
            else:
                result.quantized_nodes.append(node.name)
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    _drop_unused_initializers(graph)
    return result


def _quantize_node(
    node: onnx.NodeProto,
    inits: dict[str, onnx.TensorProto],
    amax: Mapping[str, float],
    dequantized: dict[str, str],
    new_nodes: list[onnx.NodeProto],
    graph: onnx.GraphProto,
    result: QdqResult,
) -> str | None:
    """Rewire ``node``'s inputs through Q/DQ; returns why not, or None when done."""
    data_inputs = [0] if node.op_type in ("Conv", "ConvTranspose") else [0, 1]
    plan: dict[int, str] = {}
    for index in data_inputs:
        name = node.input[index]
        if name in inits:
            if index == 0:
                return f"input {name!r} is a constant"
            plan[index] = "weight"
            continue
        value = amax.get(name)
        if value is None or not np.isfinite(value) or value <= 0.0:
            return f"no calibration range for {name!r}"
        plan[index] = "activation"
    if node.op_type in ("Conv", "ConvTranspose") and node.input[1] in inits:
        plan[1] = "weight"
    for index, kind in plan.items():
        name = node.input[index]
        if name not in dequantized:
            if kind == "weight":
                weight = numpy_helper.to_array(inits[name]).astype(np.float32)
                dequantized[name] = _add_weight_dq(name, weight, weight_axis(node, weight), graph, new_nodes)
            else:
                scale = float(amax[name]) / QUANT_LEVELS
                dequantized[name] = _add_activation_qdq(name, scale, graph, new_nodes)
                result.activation_scales[name] = scale
        node.input[index] = dequantized[name]
    return None


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
