"""The rules behind ``mmexport check``: each reads the graph and yields findings.

Sources: onnx-tensorrt's operator matrix (ops, opsets and the restrictions it lists for Loop,
LSTM/GRU/RNN and Q/DQ), TENSORRT.md's Q/DQ rules, and NVIDIA's Orin DLA operator table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import onnx
from onnx import numpy_helper

from mmexport.runtime.backends.tensorrt.api import parse_version
from mmexport.trt.opsupport import OpMatrix, added_in, dla_ops
from mmexport.trt.targets import Target

if TYPE_CHECKING:
    from mmexport.core.spec import ModelSpec

Level = Literal["error", "warning", "info"]
STANDARD_DOMAINS = ("", "ai.onnx")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
RNN_OPS = ("RNN", "GRU", "LSTM")
QDQ_TYPES = {  # zero-point / quantized element types TensorRT takes explicitly
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.FLOAT8E4M3FN: "FP8",
    onnx.TensorProto.INT4: "INT4",
}
MAX_NAMES = 5
Constants = dict[str, onnx.TensorProto]


@dataclass(frozen=True)
class Finding:
    """One problem or remark: ``code`` is a short stable id (``op-unsupported``, ``loop-dynamic-scan``...)."""

    level: Level
    code: str
    node: str | None
    op: str | None
    message: str

    def to_text(self) -> str:
        where = " ".join(p for p in (self.op, f"'{self.node}'" if self.node else None) if p)
        return f"{self.level}: [{self.code}] {where + ': ' if where else ''}{self.message}"


@dataclass
class Context:
    """What every rule reads: the graph's nodes (subgraphs included), constants, matrix, target."""

    model: onnx.ModelProto
    nodes: list[onnx.NodeProto]
    constants: dict[str, onnx.TensorProto]
    matrix: OpMatrix
    target: Target
    spec: ModelSpec | None
    tensorrt: tuple[int, ...] = ()  # the TensorRT version checked for (may be newer than the matrix)
    upper: OpMatrix | None = None  # the next newer matrix of the same major, when between two

    @classmethod
    def of(
        cls,
        model: onnx.ModelProto,
        matrix: OpMatrix,
        target: Target,
        spec: ModelSpec | None,
        tensorrt: tuple[int, ...] = (),
        upper: OpMatrix | None = None,
    ) -> Context:
        nodes: list[onnx.NodeProto] = []
        constants: dict[str, onnx.TensorProto] = {}
        _walk(model.graph, nodes, constants)
        return cls(model, nodes, constants, matrix, target, spec, tensorrt, upper)

    def value(self, name: str) -> np.ndarray | None:
        """A constant input's value, or None when it is computed at run time (or not loadable)."""
        tensor = self.constants.get(name)
        if tensor is None:
            return None
        try:
            return numpy_helper.to_array(tensor)
        except Exception:  # external data not loaded
            return None


def _walk(graph: onnx.GraphProto, nodes: list[onnx.NodeProto], constants: Constants) -> None:
    for init in graph.initializer:
        constants[init.name] = init
    for node in graph.node:
        nodes.append(node)
        if node.op_type == "Constant" and node.domain in STANDARD_DOMAINS:
            value = next((a.t for a in node.attribute if a.name == "value" and a.HasField("t")), None)
            if value is not None:
                constants[node.output[0]] = value
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _walk(sub, nodes, constants)


def run_all(ctx: Context) -> Iterator[Finding]:
    yield from opset(ctx)
    yield from operators(ctx)
    yield from loops(ctx)
    yield from recurrent(ctx)
    yield from qdq(ctx)
    if ctx.target.dla_cores:
        yield from dla(ctx)


def opset(ctx: Context) -> Iterator[Finding]:
    """The standard-domain opset must be in the parser's inclusive range."""
    m = ctx.matrix
    accepted = f"TensorRT {m.tensorrt}'s parser takes opsets {m.opset_min}-{m.opset_max}"
    for imp in ctx.model.opset_import:
        if imp.domain not in STANDARD_DOMAINS:
            continue
        if imp.version > m.opset_max:
            yield Finding(
                # between two matrices: the newer one's parser takes it, this release may
                "warning" if ctx.upper is not None and imp.version <= ctx.upper.opset_max else "error",
                "opset-too-new",
                None,
                None,
                f"opset {imp.version}: {accepted}; export with --opset {m.opset_max} or lower",
            )
        elif imp.version < m.opset_min:
            yield Finding(
                "error",
                "opset-too-old",
                None,
                None,
                f"opset {imp.version}: {accepted}",
            )


def operators(ctx: Context) -> Iterator[Finding]:
    """Every op against the matrix; restrictions the matrix lists are reported once per op type."""
    restricted: dict[str, list[str]] = defaultdict(list)
    for node in ctx.nodes:
        if node.domain not in STANDARD_DOMAINS:
            if node.op_type not in QDQ_OPS:  # Q/DQ domains: the qdq rule
                yield Finding(
                    "error",
                    "op-domain",
                    node.name or None,
                    node.op_type,
                    f"domain {node.domain!r} is not standard ONNX; TensorRT's parser needs a plugin "
                    f"registered as {node.op_type!r} for it",
                )
            continue
        entry = ctx.matrix.entry(node.op_type)
        if entry is None or not entry.supported:
            release = added_in().get(node.op_type)
            if release is not None and ctx.tensorrt and parse_version(release) <= ctx.tensorrt:
                continue  # added to the parser by the release checked for (onnx-tensorrt's Changelog)
            # Between two matrices, an op the newer one has and the Changelog does not date may be
            # there already: a warning. One dated after this release is certainly missing.
            later = ctx.upper.entry(node.op_type) if ctx.upper is not None else None
            undated = release is None and later is not None and later.supported
            level: Level = "warning" if undated else "error"
            message = _unsupported(ctx, node, entry)
            yield Finding(level, "op-unsupported", node.name or None, node.op_type, message)
        elif entry.restrictions:
            restricted[node.op_type].append(node.name)
    for op, names in restricted.items():
        entry = ctx.matrix.entry(op)
        assert entry is not None
        yield Finding(
            "info",
            "op-restriction",
            names[0] or None,
            op,
            f"{len(names)} node(s); onnx-tensorrt {ctx.matrix.tensorrt} says: {entry.restrictions}",
        )


def _unsupported(ctx: Context, node: onnx.NodeProto, entry: object) -> str:
    release = added_in().get(node.op_type)
    if release is not None:
        return f"not supported by TensorRT {ctx.matrix.tensorrt}'s ONNX parser (added in TensorRT {release})"
    if entry is None:
        return f"not in onnx-tensorrt's operator matrix for TensorRT {ctx.matrix.tensorrt}"
    return f"marked unsupported in onnx-tensorrt's operator matrix for TensorRT {ctx.matrix.tensorrt}"


def loops(ctx: Context) -> Iterator[Finding]:
    """A Loop with scan outputs needs a trip count known at build time (matrix: no dynamic length)."""
    for node in ctx.nodes:
        if node.op_type != "Loop" or node.domain not in STANDARD_DOMAINS:
            continue
        body = next((a.g for a in node.attribute if a.name == "body"), None)
        carried = max(len(node.input) - 2, 0)
        scans = len(body.output) - 1 - carried if body is not None else 0
        if scans <= 0:
            continue
        trip = node.input[0] if node.input else ""
        if not trip or ctx.value(trip) is None:
            yield Finding(
                "error",
                "loop-dynamic-scan",
                node.name or None,
                "Loop",
                f"{scans} scan output(s) with a trip count computed at run time ({trip or 'none'}); "
                "TensorRT cannot parse a Loop whose scan-output length is dynamic. Export the recurrence "
                "as a native RNN/GRU/LSTM op or give the loop a constant trip count",
            )


def recurrent(ctx: Context) -> Iterator[Finding]:
    """RNN/GRU/LSTM attributes the matrix restricts: layout, input_forget, per-direction activations."""
    for node in ctx.nodes:
        if node.op_type not in RNN_OPS or node.domain not in STANDARD_DOMAINS:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        name = node.name or None
        layout = int(attrs.get("layout", 0))
        if layout != 0:
            level: Level = "error" if node.op_type == "LSTM" else "warning"
            yield Finding(
                level,
                "rnn-attribute",
                name,
                node.op_type,
                f"layout={layout} (batch first): the matrix requires layout 0 for LSTM"
                + ("" if level == "error" else "; for this op it is not documented, build to be sure"),
            )
        if node.op_type == "LSTM" and int(attrs.get("input_forget", 0)) != 0:
            yield Finding("error", "rnn-attribute", name, "LSTM", "input_forget must be 0 for TensorRT")
        activations = [a.decode() if isinstance(a, bytes) else str(a) for a in attrs.get("activations", [])]
        direction = attrs.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else str(direction)
        if direction == "bidirectional" and activations:
            half = len(activations) // 2
            if [a.lower() for a in activations[:half]] != [a.lower() for a in activations[half:]]:
                yield Finding(
                    "error",
                    "rnn-attribute",
                    name,
                    node.op_type,
                    f"bidirectional with different forward/reverse activations {activations}: "
                    "TensorRT needs the same for both directions",
                )
        if len(node.input) > 4 and node.input[4]:
            yield Finding(
                "info",
                "rnn-sequence-lens",
                name,
                node.op_type,
                "has a sequence_lens input: not listed as a restriction in the matrix; check padded "
                "batches against onnxruntime after the build",
            )


def qdq(ctx: Context) -> Iterator[Finding]:
    """TensorRT's explicit quantization: standard domain, zero point 0, INT8/FP8/INT4 types."""
    for node in ctx.nodes:
        if node.op_type not in QDQ_OPS:
            continue
        name = node.name or None
        if node.domain not in STANDARD_DOMAINS:
            yield Finding(
                "error",
                "qdq-domain",
                name,
                node.op_type,
                f"in domain {node.domain!r}: TensorRT reads Q/DQ only in the standard ONNX domain "
                "(quantize with the QDQ format and no com.microsoft ops)",
            )
            continue
        zero_point = node.input[2] if len(node.input) > 2 else ""
        if not zero_point:
            continue
        tensor = ctx.constants.get(zero_point)
        value = ctx.value(zero_point)
        if tensor is None or value is None:
            message = "zero point is computed at run time; TensorRT needs 0"
            yield Finding("warning", "qdq-zero-point", name, node.op_type, message)
            continue
        if np.any(value.astype(np.float64) != 0):
            yield Finding(
                "error",
                "qdq-zero-point",
                name,
                node.op_type,
                f"zero point {value.ravel()[:4].tolist()} is not 0: TensorRT quantizes symmetrically only",
            )
        if tensor.data_type not in QDQ_TYPES:
            type_name = onnx.TensorProto.DataType.Name(tensor.data_type)
            yield Finding(
                "error",
                "qdq-type",
                name,
                node.op_type,
                f"quantized type {type_name}: TensorRT takes {', '.join(QDQ_TYPES.values())} (UINT8 only on "
                "DLA with a parser flag)",
            )


def dla(ctx: Context) -> Iterator[Finding]:
    """What cannot run on the target's DLA: FP32, dynamic shapes, op types off its list (approximate)."""
    if not _reduced_precision(ctx):
        yield Finding(
            "warning",
            "dla-fp32",
            None,
            None,
            "the model is FP32 and DLA runs FP16 and INT8 only: nothing runs on DLA unless the engine is "
            "built with FP16 or INT8 (an `mmexport fp16` / `mmexport calibrate` variant, or --precision "
            "fp16|int8 on TensorRT 10)",
        )
    for where, message in _dynamic_dims(ctx):
        yield Finding(
            "warning",
            "dla-dynamic-shape",
            None,
            None,
            f"{where} is dynamic ({message}): DLA needs static shapes (min = opt = max); build for DLA "
            "with --static-shapes opt, or the whole network stays on the GPU",
        )
    ops = dla_ops()
    off: dict[str, list[str]] = defaultdict(list)
    for node in ctx.nodes:
        if node.op_type not in ops.native:
            off[node.op_type].append(node.name)
    for op, names in sorted(off.items()):
        rewrite = op in ops.reconstruction
        how = "only after a graph rewrite (DLA-SW op_reconstruction)" if rewrite else "not on DLA"
        shown = ", ".join(n for n in names[:MAX_NAMES] if n) + (" ..." if len(names) > MAX_NAMES else "")
        yield Finding(
            "warning",
            "dla-layer",
            names[0] or None,
            op,
            f"{len(names)} node(s) {how}; they fall back to the GPU ({shown}). "
            f"Approximate list: {ops.source}",
        )


REDUCED_TYPES = (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)


def _reduced_precision(ctx: Context) -> bool:
    """Q/DQ nodes, FP16/BF16 tensors or casts to them: an FP16 or INT8 graph, not a plain FP32 one."""
    if any(node.op_type in QDQ_OPS for node in ctx.nodes):
        return True
    graph = ctx.model.graph
    values = [*graph.input, *graph.output, *graph.value_info]
    if any(v.type.tensor_type.elem_type in REDUCED_TYPES for v in values):
        return True
    if any(t.data_type in REDUCED_TYPES for t in ctx.constants.values()):
        return True
    return any(
        a.name == "to" and a.i in REDUCED_TYPES
        for node in ctx.nodes
        if node.op_type == "Cast"
        for a in node.attribute
    )


def _dynamic_dims(ctx: Context) -> list[tuple[str, str]]:
    if ctx.spec is not None:
        return [(f"dim {d.name!r}", f"{d.min}..{d.max}") for d in ctx.spec.dynamic_dims]
    out = []
    initializers = {i.name for i in ctx.model.graph.initializer}
    for inp in ctx.model.graph.input:
        if inp.name in initializers:
            continue
        for axis, dim in enumerate(inp.type.tensor_type.shape.dim):
            if not dim.HasField("dim_value"):
                out.append((f"input {inp.name!r} axis {axis}", dim.dim_param or "unknown size"))
    return out
