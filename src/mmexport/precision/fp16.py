"""FP16 conversion that keeps numerically unsafe parts in FP32 and says why.

The conversion itself is onnxruntime's ``float16`` converter (standard ONNX ops, Cast nodes at
the precision boundaries); what stays FP32 is decided here, from three sources:
- op types known to overflow or lose precision in FP16 (``UNSAFE_OPS``);
- nodes whose activations, on sample data, come near the FP16 range (``OVERFLOW_LIMIT``);
- the user's ``--keep-fp32`` patterns (op types or node names, shell wildcards).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import onnx

from mmexport.core.onnx_mapped import MappedModel, graph_proto
from mmexport.core.progress import Progress, no_progress
from mmexport.core.spec import FLOAT_DTYPES, ModelSpec
from mmexport.precision.graph import (
    activation_tensors,
    inferred,
    node_names,
    output_infos,
    sort_topologically,
    weightless,
)
from mmexport.precision.stats import TensorStats

FP16_MAX = 65504.0
# A value seen above a quarter of the FP16 range on sample data is likely to overflow on other
# data (or after accumulation inside the op): such nodes stay FP32.
OVERFLOW_LIMIT = FP16_MAX / 4
OVERFLOW_REASON = (
    f"produces or reads values beyond a quarter of FP16's range ({OVERFLOW_LIMIT:g}) on sample data"
)
UNSAFE_OPS: dict[str, str] = {
    "Pow": "powers overflow FP16 quickly",
    "Exp": "exp overflows FP16 above 11",
    "Log": "loses precision near 0 in FP16",
    "ReduceSumSquare": "sums of squares overflow FP16",
    "ReduceL2": "sums of squares overflow FP16",
    "ReduceLogSumExp": "exp inside overflows FP16",
    "ReduceProd": "products overflow FP16",
    "LayerNormalization": "variance in FP16 overflows; TensorRT recommends FP32 normalization",
    "RandomNormal": "random generators stay FP32",
    "RandomUniform": "random generators stay FP32",
}


@dataclass
class Fp16Plan:
    """Which nodes stay FP32, each with its reason."""

    keep: dict[str, str] = field(default_factory=dict)  # node name -> reason
    matched: set[str] = field(default_factory=set)  # --keep-fp32 patterns that matched a node
    unmatched: list[str] = field(default_factory=list)  # ... and those that matched none
    values: dict[str, float] = field(default_factory=dict)  # node -> largest |value| it touches

    def add(self, node: str, reason: str) -> None:
        self.keep.setdefault(node, reason)

    def by_reason(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for node, reason in self.keep.items():
            out.setdefault(reason, []).append(node)
        return out


@dataclass
class Fp16Scan:
    """What one FP32 pass over sample data tells the FP16 conversion: the largest finite |value| of
    every float activation, and the model's own outputs per batch (the reference of the check, so
    the FP32 model is not run a second time)."""

    amax: dict[str, float] = field(default_factory=dict)
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list)
    samples: int = 0


def scan_fp16(
    model: onnx.ModelProto | MappedModel,
    feeds: Iterable[Mapping[str, np.ndarray]],
    *,
    progress: Progress = no_progress,
) -> Fp16Scan:
    """Run ``model`` (as written, CPU) over ``feeds`` with every float activation as an output; keep
    only each tensor's running max |value| (no histograms: FP16 needs the range, not a distribution)
    and the model's outputs."""
    from mmexport.precision.accuracy import graph_runner

    proto = graph_proto(model)
    names = activation_tensors(proto)
    graph_inputs = [i.name for i in proto.graph.input]
    outputs = [o.name for o in proto.graph.output]
    fetch = list(dict.fromkeys([*outputs, *(n for n in names if n not in graph_inputs)]))
    scan = Fp16Scan()
    with graph_runner(model, outputs=output_infos(proto, fetch), fetch=fetch) as run:
        for feed in feeds:
            inputs = {name: np.asarray(feed[name]) for name in graph_inputs}
            values = run.run(inputs)
            for name in names:
                value = inputs[name] if name in inputs else values[name]
                scan.amax[name] = max(scan.amax.get(name, 0.0), _finite_amax(value))
            scan.outputs.append({name: values[name] for name in outputs})
            del values
            scan.samples += int(next(iter(inputs.values())).shape[0]) if inputs else 1
            progress(scan.samples)
    return scan


def _finite_amax(values: np.ndarray) -> float:
    """Largest finite |x| (0 when there is none): an inf already in FP32 is not an FP16 range."""
    if values.size == 0 or values.dtype.kind != "f":
        return 0.0
    top = float(max(values.max(), -values.min()))
    if np.isfinite(top):
        return top
    finite = values[np.isfinite(values)]
    return float(np.abs(finite).max()) if finite.size else 0.0


def plan_fp16(
    model: onnx.ModelProto,
    *,
    stats: Mapping[str, TensorStats | float] | None = None,
    keep_patterns: Iterable[str] = (),
) -> Fp16Plan:
    """Decide which nodes of ``model`` stay FP32 (names unnamed nodes in place); ``stats`` gives
    each tensor's largest |value| (a number, or the calibration statistics).

    A node producing or reading a value beyond ``OVERFLOW_LIMIT`` stays FP32, so an out-of-range
    value is never cast to FP16 on its way from one node to the next.
    """
    from onnxruntime.transformers import float16

    node_names(model)
    plan = Fp16Plan()
    patterns = list(keep_patterns)
    blocked = set(float16.DEFAULT_OP_BLOCK_LIST)
    for node in model.graph.node:
        for pattern in patterns:
            if fnmatch.fnmatchcase(node.op_type, pattern) or fnmatch.fnmatchcase(node.name, pattern):
                plan.add(node.name, f"--keep-fp32 {pattern}")
                plan.matched.add(pattern)
        if node.op_type in UNSAFE_OPS:
            plan.add(node.name, f"{node.op_type}: {UNSAFE_OPS[node.op_type]}")
        if node.op_type in blocked:
            plan.add(node.name, f"{node.op_type}: onnxruntime's converter has no FP16 form of it")
        for name in [*node.output, *node.input]:
            seen = stats.get(name) if stats else None
            amax = seen.amax if isinstance(seen, TensorStats) else seen
            if amax is not None and amax > OVERFLOW_LIMIT:
                plan.add(node.name, OVERFLOW_REASON)
                plan.values[node.name] = max(plan.values.get(node.name, 0.0), amax)
    plan.unmatched = [p for p in patterns if p not in plan.matched]
    return plan


def convert_fp16(
    model: onnx.ModelProto | MappedModel, plan: Fp16Plan, *, fp16_io: bool = False
) -> onnx.ModelProto:
    """An FP16 copy of ``model`` with ``plan.keep`` nodes in FP32; FP32 inputs/outputs unless
    ``fp16_io``. A ``MappedModel``'s weights are read from its file one tensor at a time."""
    from onnxruntime.transformers import float16

    proto = graph_proto(model)
    copy = weightless(proto, keep=0)  # the converter sees types and dims; weights are filled in below
    del copy.graph.value_info[:]  # the converter's own shape inference, without the weights' bytes
    copy.graph.value_info.extend(inferred(proto).graph.value_info)
    # the converter reads a weight's shape from its values; the copy has dims only
    original = float16.make_value_info_from_tensor
    float16.make_value_info_from_tensor = _value_info_from_dims
    try:
        converted = float16.convert_float_to_float16(
            copy,
            keep_io_types=not fp16_io,
            op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST),
            node_block_list=sorted(plan.keep),
            disable_shape_infer=True,
        )
    finally:
        float16.make_value_info_from_tensor = original
    _fill_weights(converted.graph, model)
    if isinstance(model, MappedModel):
        model.check_unchanged()  # the weights read from the file are the graph's
    sort_topologically(converted.graph)  # the converter appends its input casts at the end
    _skip_round_trips(converted.graph, set(plan.keep))
    return converted


def _value_info_from_dims(tensor: onnx.TensorProto) -> onnx.ValueInfoProto:
    return onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))


def _fill_weights(converted: onnx.GraphProto, source: onnx.ModelProto | MappedModel) -> None:
    """Give ``converted``'s initializers their values from ``source``, one tensor at a time (the
    converter ran on a copy without them, so the FP32 weights were never copied whole): FP16 where
    the converter made the tensor FP16 (clipped to FP16's range as its converter does), else as
    they are."""
    from onnx import numpy_helper

    mapped = source if isinstance(source, MappedModel) else None
    graph = source.proto.graph if isinstance(source, MappedModel) else source.graph
    weights = {init.name: init for init in graph.initializer}
    for init in converted.initializer:
        original = weights.get(init.name)
        if original is None:
            continue
        if init.data_type == original.data_type:
            init.CopyFrom(mapped.inline(original) if mapped else original)
        else:  # FLOAT made FLOAT16
            values = mapped.array(original) if mapped else numpy_helper.to_array(original)
            init.raw_data = to_float16(values).tobytes()


FP16_MAX = 65504.0
FP16_SMALLEST = np.float16(2.0**-24)  # the smallest positive (subnormal) FP16 value


def to_float16(values: np.ndarray) -> np.ndarray:
    """``values`` in FP16 as onnxruntime's converter makes them (``convert_np_to_float16``, the
    same bits): finite values beyond FP16's range become +-65504 and non-zero values that would
    round to zero +-2^-24, so that no weight changes sign or finiteness. One cast and two integer
    checks on the result, where the converter makes eight passes over the array (0.39 s vs 7.9 s
    for 96M weights: ``benchmarks/evaluation_paths.py``)."""
    flat = np.asarray(values).reshape(-1)
    with np.errstate(over="ignore"):  # overflows to inf, fixed below
        out = flat.astype(np.float16)
    magnitude = out.view(np.uint16) & 0x7FFF
    zeros = np.flatnonzero(magnitude == 0)
    zeros = zeros[flat[zeros] != 0]
    out[zeros] = np.copysign(FP16_SMALLEST, flat[zeros]).astype(np.float16)
    infs = np.flatnonzero(magnitude == 0x7C00)
    infs = infs[np.isfinite(flat[infs])]
    out[infs] = np.copysign(FP16_MAX, flat[infs]).astype(np.float16)
    return out.reshape(np.shape(values))


def spec_for_graph(spec: ModelSpec, model: onnx.ModelProto) -> ModelSpec:
    """``spec`` with each float input's dtype as ``model`` takes it: float16 after ``fp16_io``,
    so that the manifest describes the graph and the runtime checks feeds against it."""
    graph = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    inputs = []
    for inp in spec.inputs:
        elem = graph.get(inp.name)
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem)).name if elem else inp.dtype
        converted = inp.dtype in FLOAT_DTYPES and dtype in FLOAT_DTYPES and dtype != inp.dtype
        inputs.append(replace(inp, dtype=dtype) if converted else inp)
    return replace(spec, inputs=tuple(inputs))


def same_model(a: ModelSpec, b: ModelSpec) -> bool:
    """Whether two specs describe one model, float inputs' widths aside (an ``fp16_io``
    variant takes float16 where its FP32 source takes float32)."""

    def widthless(spec: ModelSpec) -> ModelSpec:
        floats = tuple(replace(i, dtype="float32") if i.dtype in FLOAT_DTYPES else i for i in spec.inputs)
        return replace(spec, inputs=floats)

    return widthless(a).to_dict() == widthless(b).to_dict()


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def _skip_round_trips(graph: onnx.GraphProto, kept: set[str]) -> None:
    """Remove FP32 -> FP16 -> FP32 cast pairs the converter puts between two FP32 parts.

    The converter casts every output of a kept node to FP16 and back, even when the consumer is
    kept in FP32 too; a value outside the FP16 range (the reason a node is kept) would become inf.
    """
    float32 = onnx.TensorProto.FLOAT
    producer = {o: n for n in graph.node for o in n.output}
    fp32_inputs = {i.name for i in graph.input if i.type.tensor_type.elem_type == float32}

    def is_fp32(name: str) -> bool:
        node = producer.get(name)
        if node is None:
            return name in fp32_inputs
        return node.name in kept or _cast_to(node) == float32

    for node in graph.node:
        for index, name in enumerate(node.input):
            back = producer.get(name)
            if back is None or _cast_to(back) != float32:
                continue
            down = producer.get(back.input[0])
            if down is not None and _cast_to(down) == onnx.TensorProto.FLOAT16 and is_fp32(down.input[0]):
                node.input[index] = down.input[0]
    _drop_dead_casts(graph)


def _drop_dead_casts(graph: onnx.GraphProto) -> None:
    while True:
        used = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if n.op_type == "Cast" and not any(o in used for o in n.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)
