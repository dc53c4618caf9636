"""Small read-only views of an ONNX graph that the precision passes share."""

from __future__ import annotations

from collections.abc import Iterable

import onnx

from mmexport.core.onnx_file import copy_fields

FLOAT_TYPES = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
    onnx.TensorProto.DOUBLE,
}


SHAPE_DATA_LIMIT = 4096  # initializers up to this many elements keep their values for inference


def inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model``'s graph with the value infos shape inference finds, run on a copy without the
    values of its large initializers: inference needs their types and dims only (values only of
    small ones, such as Reshape's shape), and serializing every weight for it took seconds per call
    on a model of hundreds of MB. Best effort: the graph as declared when inference fails."""
    skeleton = weightless(model)
    try:
        return onnx.shape_inference.infer_shapes(skeleton)
    except Exception:  # inference is best effort: fall back to what the file declares
        return skeleton


def weightless(model: onnx.ModelProto, keep: int = SHAPE_DATA_LIMIT) -> onnx.ModelProto:
    """A copy of ``model`` whose initializers of more than ``keep`` elements (and external ones)
    have their name, type and dims but no values: what passes that look at the graph need, without
    copying hundreds of MB of weights."""
    skeleton = onnx.ModelProto()
    copy_fields(model, skeleton, skip="graph")
    copy_fields(model.graph, skeleton.graph, skip="initializer")
    for init in model.graph.initializer:
        size = 1
        for d in init.dims:
            size *= d
        if size <= keep and init.data_location != onnx.TensorProto.EXTERNAL:
            skeleton.graph.initializer.append(init)
        else:
            skeleton.graph.initializer.add(name=init.name, data_type=init.data_type, dims=init.dims)
    return skeleton


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every named tensor that shape inference can type (inputs, outputs, values)."""
    graph = inferred(model).graph
    types: dict[str, int] = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    return types


def activation_tensors(model: onnx.ModelProto) -> list[str]:
    """Float tensors computed at run time: graph inputs and node outputs, not weights or constants."""
    types = tensor_types(model)
    constants = {init.name for init in model.graph.initializer}
    names: list[str] = []
    for info in model.graph.input:
        if info.name not in constants:
            names.append(info.name)
    for node in model.graph.node:
        if node.op_type == "Constant":
            constants.update(node.output)
            continue
        names.extend(o for o in node.output if o)
    seen: set[str] = set()
    out = []
    for name in names:
        if name not in seen and name not in constants and types.get(name) in FLOAT_TYPES:
            seen.add(name)
            out.append(name)
    return out


def node_names(model: onnx.ModelProto) -> list[str]:
    """Node names, giving unnamed nodes a stable name (op type and position) in place."""
    names = []
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
        names.append(node.name)
    return names


# Ops whose output is a tensor's shape, not its values: an exported text encoder reshapes with the
# batch size read from the image input (one symbolic dim for all inputs), which is no data flow.
SHAPE_OPS = ("Shape", "Size")


def reaching_inputs(model: onnx.ModelProto) -> dict[str, frozenset[str]]:
    """For each node, the graph inputs whose values reach it (its branch of a multimodal model).

    Values only: a path through ``Shape``/``Size`` carries no input, so each branch runs from its
    input until it meets another branch's data."""
    graph_inputs = {i.name for i in model.graph.input} - {init.name for init in model.graph.initializer}
    reach: dict[str, frozenset[str]] = {name: frozenset([name]) for name in graph_inputs}
    out: dict[str, frozenset[str]] = {}
    for node in model.graph.node:  # ONNX nodes are topologically sorted
        found: frozenset[str] = frozenset().union(*(reach.get(i, frozenset()) for i in node.input))
        out[node.name] = found
        if node.op_type in SHAPE_OPS and node.domain in ("", "ai.onnx"):
            found = frozenset()
        for o in node.output:
            reach[o] = found
    return out


def output_infos(model: onnx.ModelProto, names: Iterable[str]) -> list[onnx.ValueInfoProto]:
    """Graph outputs for those of ``names`` that are not outputs of ``model`` already, typed by shape
    inference (``model_file(model, outputs=...)`` adds them to a written copy, so a run can observe them)."""
    types = tensor_types(model)
    existing = {o.name for o in model.graph.output}
    names = [n for n in dict.fromkeys(names) if n not in existing]
    return [onnx.helper.make_tensor_value_info(n, types.get(n, onnx.TensorProto.FLOAT), None) for n in names]


def sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` in place so that every node comes after its producers (stable)."""
    available = {i.name for i in graph.input} | {init.name for init in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or an outer-scope name: keep the remaining order
            ordered.extend(rest)
            break
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)
