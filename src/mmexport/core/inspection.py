"""``mmexport inspect``: what an ONNX artifact holds, read from the graph and its manifest."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmexport.core.artifact import LoadedArtifact, load_artifact
from mmexport.core.errors import ArtifactError
from mmexport.core.manifest import ArtifactKind, Manifest
from mmexport.core.onnx_file import import_onnx
from mmexport.core.onnx_mapped import read_mapped

if TYPE_CHECKING:
    import onnx

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


def inspect_artifact(path: str | Path | LoadedArtifact) -> dict[str, Any]:
    """A JSON-able description: inputs with modalities and dim ranges, outputs, precision, ops."""
    loaded = load_artifact(path)
    path, manifest = loaded.path, loaded.manifest
    if path.suffix != ".onnx" and (manifest is None or manifest.kind != ArtifactKind.ONNX):
        raise ArtifactError(str(path), "is not an ONNX file; inspect reads .onnx artifacts")
    graph_info = _read_graph(loaded)
    sha = loaded.sha256
    info: dict[str, Any] = {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "sha256": sha,
        "manifest": None,
        **graph_info,
    }
    if manifest is not None:
        info["manifest"] = _manifest_summary(manifest, sha)
        info["inputs"] = [_with_spec(i, manifest) for i in info["inputs"]]
        info["outputs"] = [_with_labels(o, manifest) for o in info["outputs"]]
    return info


def _read_graph(loaded: LoadedArtifact) -> dict[str, Any]:
    import_onnx("inspecting ONNX files")
    model = loaded.model if loaded.parsed else read_mapped(loaded.path, external_data=False).proto
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    ops = Counter(n.op_type for n in graph.node)
    weight_types = Counter(_type_name(t.data_type) for t in graph.initializer)
    params = sum(_numel(t.dims) for t in graph.initializer)
    return {
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "precision": detect_precision(ops, weight_types),
        "inputs": [_value_info(v) for v in graph.input if v.name not in inits],
        "outputs": [_value_info(v) for v in graph.output],
        "nodes": len(graph.node),
        "parameters": params,
        "weight_dtypes": dict(weight_types),
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def model_precision(model: onnx.ModelProto) -> str:
    """fp32, fp16, or int8-qdq for a loaded model."""
    graph = model.graph
    return detect_precision(
        Counter(n.op_type for n in graph.node), Counter(_type_name(t.data_type) for t in graph.initializer)
    )


def detect_precision(ops: Counter[str], weight_types: Counter[str]) -> str:
    """fp32, fp16, or int8-qdq, from the graph alone (what TensorRT 11 will see)."""
    if QDQ_OPS & set(ops):
        return "int8-qdq"
    halves = weight_types.get("float16", 0)
    floats = halves + weight_types.get("float32", 0)
    if floats and halves / floats > 0.5:
        return "fp16"
    return "fp32"


def _value_info(v: Any) -> dict[str, Any]:
    t = v.type.tensor_type
    return {
        "name": v.name,
        "dtype": _type_name(t.elem_type),
        "shape": [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in t.shape.dim],
    }


def _with_spec(entry: dict[str, Any], manifest: Manifest) -> dict[str, Any]:
    try:
        spec_input = manifest.spec.input(entry["name"])
    except KeyError:
        return entry
    dims = {d: manifest.spec.dims[d].to_dict() for d in spec_input.dim_names}
    out = {**entry, "modality": spec_input.modality, "dims": dims, "range": spec_input.range}
    if spec_input.preprocess is not None:
        out["preprocess"] = dict(spec_input.preprocess)
    if spec_input.mask_of is not None:
        out["mask_of"] = spec_input.mask_of
    return out


def _with_labels(entry: dict[str, Any], manifest: Manifest) -> dict[str, Any]:
    labels = next((o.labels for o in manifest.spec.outputs if o.name == entry["name"]), None)
    return entry if labels is None else {**entry, "labels": list(labels)}


SHOWN = 6
"""How many vocabulary words and labels the table lists before "…"."""


def _first(values: list[Any], count: int = SHOWN) -> str:
    shown = ", ".join(str(v) for v in values[:count])
    return shown + (", …" if len(values) > count else "")


def describe_preprocess(pre: dict[str, Any]) -> str:
    """One line for an input's ``preprocess``: vocabulary size and first words, mean/std, mel parameters."""
    kind = pre.get("kind")
    if kind == "tokens":
        vocab = pre.get("vocab")
        parts = [f"vocab {len(vocab)} words ({_first(vocab)})" if vocab else "ids given as they are"]
        if "pad" in pre:
            parts.append(f"pad id {pre['pad']}")
        if "unk" in pre:
            parts.append(f"unknown words -> {pre['unk']}")
        if pre.get("lowercase"):
            parts.append("lowercased")
        return "tokens: " + ", ".join(parts)
    if kind == "image":
        parts = [f"mean {pre['mean']}", f"std {pre['std']}"]
        if "scale" in pre:
            parts.append(f"pixels x {pre['scale']}")
        if "channel_order" in pre:
            parts.append(pre["channel_order"])
        return "image: " + ", ".join(parts)
    if kind == "log_mel":
        text = (
            f"log-mel: {pre['sample_rate']} Hz, n_fft {pre['n_fft']}, hop {pre['hop_length']}, "
            f"{pre['n_mels']} mels"
        )
        return text + (f", {pre['duration_s']} s" if "duration_s" in pre else "")
    return str(kind)


def _manifest_summary(manifest: Manifest, sha: str) -> dict[str, Any]:
    parity: dict[str, Any] = manifest.validation.parity or {}
    rows: list[Any] = parity["rows"] if isinstance(parity.get("rows"), list) else []
    return {
        "kind": manifest.kind,
        "precision": manifest.precision,
        "sha256_matches": manifest.sha256 == sha,
        "source": manifest.source.to_dict(),
        "producer": manifest.producer.to_dict(),
        "created": manifest.created,
        "parity_passed": parity.get("passed"),
        "parity_points": list(dict.fromkeys(r.get("point", "?") for r in rows if isinstance(r, dict))),
        "spec": manifest.spec.to_dict(),
    }


def _type_name(elem_type: int) -> str:
    import onnx

    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, ValueError, TypeError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _numel(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def format_inspection(info: dict[str, Any]) -> str:
    """The human-readable view of ``inspect_artifact``'s result."""
    lines = [f"{info['path']}  ({info['size_bytes'] / 1e6:.2f} MB, sha256 {info['sha256'][:12]}…)"]
    m = info["manifest"]
    opsets = ", ".join(f"{k} {v}" for k, v in info["opset"].items())
    lines.append(f"precision   {info['precision']}   opset {opsets}   producer {info['producer']}")
    if m is None:
        lines.append("manifest    none (modalities and dim ranges unknown)")
    else:
        check = "matches" if m["sha256_matches"] else "DOES NOT MATCH the file (modified since?)"
        parity = {True: "passed", False: "FAILED", None: "not run"}[m["parity_passed"]]
        points = f" at {', '.join(m['parity_points'])}" if m["parity_points"] else ""
        lines.append(f"manifest    sha256 {check}; parity {parity}{points}")
        src = m["source"].get("model")
        prod = m["producer"]
        lines.append(
            f"made by     {prod.get('stage', '?')} from {src} ({prod.get('exporter', '?')} exporter)"
        )
    lines.append("inputs")
    for i in info["inputs"]:
        shape = ", ".join(str(d) for d in i["shape"])
        modality = i.get("modality", "?")
        dims = ", ".join(f"{n} {d['min']}..{d['max']} (opt {d['opt']})" for n, d in i.get("dims", {}).items())
        rng = f"  values [{i['range'][0]}, {i['range'][1]})" if i.get("range") else ""
        lines.append(f"  {i['name']:<12} {modality:<7} {i['dtype']:<8} [{shape}]  {dims}{rng}".rstrip())
        if i.get("preprocess"):
            lines.append(f"  {'':<12} {describe_preprocess(i['preprocess'])}")
        if i.get("mask_of"):
            lines.append(f"  {'':<12} mask of {i['mask_of']} (1 on tokens, 0 on padding)")
    lines.append("outputs")
    for o in info["outputs"]:
        lines.append(f"  {o['name']:<12} {o['dtype']:<8} [{', '.join(str(d) for d in o['shape'])}]")
        if o.get("labels"):
            lines.append(f"  {'':<12} labels {len(o['labels'])}: {_first(o['labels'])}")
    ops = ", ".join(f"{k} {v}" for k, v in info["ops"].items())
    lines.append(f"graph       {info['nodes']} nodes, {info['parameters']:,} parameters")
    lines.append(f"ops         {ops}")
    return "\n".join(lines)
