"""Per-modality INT8 sensitivity, and keeping the costliest branches in FP32 to meet a budget.

A node's branch is found from the graph: the graph inputs whose values reach it. Nodes reached
from one modality's inputs belong to that modality's encoder ("image", "text", "audio", ...);
nodes reached from several belong to "fusion".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import onnx

from mmexport.core.errors import MmexportError
from mmexport.core.onnx_mapped import MappedModel, graph_proto
from mmexport.core.progress import Progress
from mmexport.core.spec import ModelSpec
from mmexport.precision.accuracy import AccuracyReport, LabelledBatch, Model, evaluate
from mmexport.precision.graph import node_names, reaching_inputs
from mmexport.precision.qdq import insert_qdq, quantizable_nodes

FUSION = "fusion"
VARIANTS_PER_PASS = 4
BatchFactory = Callable[[], Iterable[LabelledBatch]]


def branches(model: onnx.ModelProto, spec: ModelSpec) -> dict[str, list[str]]:
    """Branch name -> names of its quantizable nodes, in graph order."""
    node_names(model)
    modality = {i.name: i.modality for i in spec.inputs}
    reach = reaching_inputs(model)
    out: dict[str, list[str]] = {}
    for node in quantizable_nodes(model):
        kinds = {modality.get(name, name) for name in reach.get(node.name, frozenset())}
        branch = kinds.pop() if len(kinds) == 1 else FUSION if kinds else "constant"
        out.setdefault(branch, []).append(node.name)
    return out


@dataclass
class BranchCost:
    branch: str
    nodes: int
    drop_points: float | None  # accuracy points lost when only this branch is INT8


def branch_costs(
    model: onnx.ModelProto | MappedModel,
    amax: Mapping[str, float],
    spec: ModelSpec,
    batches: BatchFactory,
    *,
    source: str,
    progress: Progress | None = None,
    reference: Model | None = None,
) -> tuple[list[BranchCost], AccuracyReport]:
    """Quantize one branch at a time (all variants evaluated in one pass over the data); the FP32
    reference runs ``reference`` (e.g. the model's verified file) when given, else ``model``. A
    ``MappedModel``'s weights are read from its file."""
    groups = branches(graph_proto(model), spec)
    variants: list[tuple[str, str, Model]] = [("fp32", "fp32", model if reference is None else reference)]
    for branch, nodes in groups.items():
        variants.append((f"int8 {branch} only", "int8", insert_qdq(model, amax, nodes=nodes).model))
    report = evaluate(variants, batches(), spec, source=source, progress=progress)
    costs = [
        BranchCost(branch, len(nodes), report.drop(variant))
        for (branch, nodes), variant in zip(groups.items(), report.variants[1:], strict=True)
    ]
    costs = sorted(costs, key=lambda c: -(c.drop_points or 0.0))
    # A modality whose encoder has no Conv/MatMul/Gemm (e.g. a GRU text branch) stays float: say so.
    costs += [
        BranchCost(m, 0, None) for m in dict.fromkeys(i.modality for i in spec.inputs) if m not in groups
    ]
    return costs, report


@dataclass
class BudgetResult:
    kept_fp32: list[str]  # branches left in FP32 (some of their nodes may be INT8 again)
    quantized_nodes: list[str]
    drop_points: float | None
    met: bool
    requantized: list[str] = field(default_factory=list)  # nodes of kept branches made INT8 again


def fit_budget(
    model: onnx.ModelProto | MappedModel,
    amax: Mapping[str, float],
    spec: ModelSpec,
    batches: BatchFactory,
    costs: list[BranchCost],
    max_drop: float,
    *,
    source: str,
) -> BudgetResult:
    """Keep the costliest branches in FP32, one at a time, until the drop is within ``max_drop``;
    then quantize again the nodes of those branches that the budget still allows."""
    groups = branches(graph_proto(model), spec)
    costs = [c for c in costs if c.nodes]  # nothing to keep in FP32 where nothing is INT8
    kept: list[str] = []
    drop: float | None = None
    for step in range(len(costs) + 1):
        nodes = [n for branch, names in groups.items() if branch not in kept for n in names]
        drop = _drops(model, amax, spec, batches, [nodes], source=source)[0]
        if drop is None:
            raise MmexportError(
                "--max-accuracy-drop needs an accuracy to measure: labelled evaluation data, or spec "
                "outputs with class labels (for top-1 agreement); this model and data have neither"
            )
        if drop <= max_drop:
            result = BudgetResult(kept, nodes, drop, met=True)
            return _requantize(model, amax, spec, batches, groups, result, max_drop, source=source)
        if step < len(costs):
            kept.append(costs[step].branch)
    return BudgetResult(kept, [], drop, met=False)


def _drops(
    model: onnx.ModelProto | MappedModel,
    amax: Mapping[str, float],
    spec: ModelSpec,
    batches: BatchFactory,
    node_sets: list[list[str]],
    *,
    source: str,
) -> list[float | None]:
    """The accuracy drop of each INT8 variant (quantizing ``node_sets[i]``): a few variants per
    pass over the data, so that memory holds at most ``VARIANTS_PER_PASS`` model copies."""
    drops: list[float | None] = []
    for start in range(0, len(node_sets), VARIANTS_PER_PASS):
        group = node_sets[start : start + VARIANTS_PER_PASS]
        variants: list[tuple[str, str, Model]] = [("fp32", "fp32", model)]
        variants += [
            (f"int8 #{i}", "int8", insert_qdq(model, amax, nodes=n).model) for i, n in enumerate(group)
        ]
        report = evaluate(variants, batches(), spec, source=source)
        drops += [report.drop(v) for v in report.variants[1:]]
    return drops


def _requantize(
    model: onnx.ModelProto | MappedModel,
    amax: Mapping[str, float],
    spec: ModelSpec,
    batches: BatchFactory,
    groups: dict[str, list[str]],
    result: BudgetResult,
    max_drop: float,
    *,
    source: str,
) -> BudgetResult:
    """Node by node within the kept branches: rank each node by the drop it adds alone, then keep
    the longest cheapest-first prefix whose measured drop stays within the budget (two passes)."""
    candidates = [n for branch in result.kept_fp32 for n in groups[branch]]
    if not candidates:
        return result
    base = result.quantized_nodes
    alone = _drops(model, amax, spec, batches, [[*base, n] for n in candidates], source=source)
    ranked = [n for _, n in sorted(zip([d or 0.0 for d in alone], candidates, strict=True))]
    prefixes = [[*base, *ranked[: k + 1]] for k in range(len(ranked))]
    drops = _drops(model, amax, spec, batches, prefixes, source=source)
    best = max((k for k, d in enumerate(drops) if d is not None and d <= max_drop), default=None)
    if best is None:
        return result
    return BudgetResult(result.kept_fp32, prefixes[best], drops[best], True, ranked[: best + 1])
