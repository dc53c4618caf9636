"""What ``mmexport triton`` reads: ONNX files or TensorRT engines, their manifests and graph I/O.

The spec (names, named dims and their ranges) comes from the manifest; a bare ONNX file gets the
spec its graph declares (``runtime.graph_spec``). Data types and output shapes come from the
graph, the contract Triton checks the config against: an engine's are those of the ONNX it was
built from, found through its manifest (beside the engine, or at the path recorded at build time)
and matched by sha256, since reading the plan itself needs TensorRT and the GPU it was built for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mmexport.core.artifact import LoadedArtifact, load_artifact
from mmexport.core.errors import ArtifactError
from mmexport.core.files import sha256_file
from mmexport.core.manifest import ArtifactKind, Manifest, manifest_path
from mmexport.core.onnx_file import read_onnx
from mmexport.core.spec import ModelSpec
from mmexport.runtime.backends.base import TensorInfo
from mmexport.runtime.backends.tensorrt.engine_info import EngineInfo

if TYPE_CHECKING:
    import onnx

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan")


@dataclass(frozen=True)
class DeployArtifact:
    """One artifact to serve: its spec, graph I/O, precision and the files that travel with it."""

    path: Path
    kind: ArtifactKind
    spec: ModelSpec
    inputs: tuple[TensorInfo, ...]  # as the graph declares them, in the spec's order
    outputs: tuple[TensorInfo, ...]
    precision: str  # "fp32", "fp16" or "int8"
    manifest: Manifest | None = None
    external_data: tuple[str, ...] = ()  # weight files an ONNX names, relative to its folder
    engine: EngineInfo | None = None

    def interface(self) -> tuple[object, ...]:
        """What Triton sees of the artifact: engines for several GPUs must agree on it."""
        profiles = self.engine.profiles if self.engine is not None else []
        return (self.spec.to_dict(), self.inputs, self.outputs, profiles)


def read_artifacts(paths: Sequence[str | Path | LoadedArtifact]) -> list[DeployArtifact]:
    """Read every artifact (a LoadedArtifact is not read again) and refuse combinations one
    Triton model cannot hold."""
    if not paths:
        raise ArtifactError("(no artifact)", "give an ONNX file, or one or more TensorRT engines")
    resolved = [(p.path if isinstance(p, LoadedArtifact) else Path(p)).resolve() for p in paths]
    for i, path in enumerate(resolved):
        if path in resolved[:i]:
            raise ArtifactError(str(path), "is given twice")
    artifacts = [read_artifact(p) for p in paths]
    kinds = sorted({a.kind for a in artifacts})
    if len(kinds) > 1:
        names = ", ".join(f"{a.path.name} ({a.kind})" for a in artifacts)
        raise ArtifactError(
            str(artifacts[0].path),
            f"one Triton model holds an ONNX file or TensorRT engines, not both; got {names}",
            hint="make one repository entry per platform, each with its own --name",
        )
    if kinds == [ArtifactKind.ONNX] and len(artifacts) > 1:
        raise ArtifactError(
            str(artifacts[1].path),
            f"one Triton model holds one ONNX file; got {len(artifacts)}",
            hint="several files are for TensorRT engines built for different GPUs",
        )
    if kinds == [ArtifactKind.ENGINE]:
        _check_engines(artifacts)
    return artifacts


def read_artifact(path: str | Path | LoadedArtifact) -> DeployArtifact:
    """One artifact to serve, from its manifest (else its graph) and, for ONNX, its graph."""
    if not isinstance(path, LoadedArtifact) and Path(path).suffix == ".json" and Path(path).is_file():
        raise ArtifactError(str(path), "is a manifest; pass the artifact it describes")
    loaded = load_artifact(path)
    path, manifest = loaded.path, loaded.manifest
    kind = manifest.kind if manifest is not None else _kind_from_suffix(path)
    if kind == ArtifactKind.ENGINE:
        return _read_engine(path, manifest)
    if kind != ArtifactKind.ONNX:
        raise ArtifactError(str(manifest_path(path)), f"describes a {kind!r} artifact, not ONNX or an engine")
    model = loaded.model if loaded.parsed else load_graph(path)  # the graph alone, when not parsed yet
    inputs, outputs = graph_io(path, model)
    if manifest is None:
        from mmexport.core.inspection import model_precision
        from mmexport.runtime.graph_spec import spec_from_graph

        spec = spec_from_graph(path, list(inputs), list(outputs))
        precision = model_precision(model).removesuffix("-qdq")
    else:
        spec, precision = manifest.spec, manifest.precision
    inputs, outputs = _in_spec_order(path, spec, inputs, outputs)
    return DeployArtifact(
        path, ArtifactKind.ONNX, spec, inputs, outputs, precision, manifest, external_data_files(path, model)
    )


def _kind_from_suffix(path: Path) -> ArtifactKind:
    if path.suffix in ONNX_SUFFIXES:
        return ArtifactKind.ONNX
    if path.suffix in ENGINE_SUFFIXES:
        return ArtifactKind.ENGINE
    raise ArtifactError(
        str(path),
        f"is neither ONNX ({', '.join(ONNX_SUFFIXES)}) nor a TensorRT engine ({', '.join(ENGINE_SUFFIXES)}), "
        "and has no manifest that says what it is",
    )


def _read_engine(path: Path, manifest: Manifest | None) -> DeployArtifact:
    from mmexport.runtime.backends.tensorrt.loader import engine_info

    info = engine_info(path, manifest)
    assert manifest is not None  # engine_info refuses an engine without one
    source = source_onnx(path, manifest, info)
    inputs, outputs = graph_io(source, load_graph(source))
    inputs, outputs = _in_spec_order(source, manifest.spec, inputs, outputs)
    return DeployArtifact(
        path, ArtifactKind.ENGINE, manifest.spec, inputs, outputs, manifest.precision, manifest, (), info
    )


def source_onnx(engine: Path, manifest: Manifest, info: EngineInfo) -> Path:
    """The ONNX an engine was built from: beside it, or where the build read it; sha256 checked."""
    beside = manifest.source.onnx
    candidates = [engine.parent / Path(str(beside)).name] if beside else []
    candidates += [Path(info.source_onnx)] if info.source_onnx else []
    wanted = manifest.source.onnx_sha256 or info.source_sha256
    for candidate in candidates:
        if candidate.is_file() and (not wanted or sha256_file(candidate) == wanted):
            return candidate
    shown = manifest.source.onnx or info.source_onnx or "the source ONNX"
    raise ArtifactError(
        str(engine),
        f"the data types and output shapes of an engine are read from the ONNX it was built from "
        f"({shown}), which is neither beside it nor at {info.source_onnx or 'a recorded path'}"
        + (" with the sha256 its manifest records" if wanted else ""),
        hint=f"copy {Path(str(shown)).name} (the file the engine was built from) beside the engine",
    )


def load_graph(path: Path) -> onnx.ModelProto:
    """The graph without its external weights (only the structure is read)."""
    return read_onnx(path, external_data=False)


def graph_io(path: Path, model: onnx.ModelProto) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    """Inputs (initializers excluded) and outputs as the graph declares them."""
    constants = {init.name for init in model.graph.initializer}
    inputs = tuple(_tensor(path, v) for v in model.graph.input if v.name not in constants)
    return inputs, tuple(_tensor(path, v) for v in model.graph.output)


def _tensor(path: Path, value: onnx.ValueInfoProto) -> TensorInfo:
    import onnx

    t = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not t.HasField("shape"):
        raise ArtifactError(
            str(path),
            f"{value.name!r} has no tensor shape in the graph; Triton needs its rank",
            hint="run onnx.shape_inference on the model, or export it with mmexport to-onnx",
        )
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
    except (KeyError, ValueError, TypeError):
        dtype = onnx.TensorProto.DataType.Name(t.elem_type).lower()
    shape = tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
        for d in t.shape.dim
    )
    return TensorInfo(value.name, dtype, shape)


def _in_spec_order(
    path: Path, spec: ModelSpec, inputs: tuple[TensorInfo, ...], outputs: tuple[TensorInfo, ...]
) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    """The graph's tensors in the spec's order; the names must be the same, the ranks too."""
    for what, names, tensors in (
        ("inputs", spec.input_names, inputs),
        ("outputs", spec.output_names, outputs),
    ):
        found = [t.name for t in tensors]
        if sorted(found) != sorted(names):
            raise ArtifactError(
                str(path),
                f"the manifest's {what} ({', '.join(names)}) are not the graph's ({', '.join(found)})",
                hint="was the file replaced after its manifest was written?",
            )
    by_name = {t.name: t for t in inputs}
    for inp in spec.inputs:
        declared = by_name[inp.name].shape
        if len(declared) != len(inp.shape):
            raise ArtifactError(
                str(path),
                f"input {inp.name!r} has rank {len(declared)} in the graph, {len(inp.shape)} in the spec",
            )
    outs = {t.name: t for t in outputs}
    return tuple(by_name[n] for n in spec.input_names), tuple(outs[n] for n in spec.output_names)


def external_data_files(path: Path, model: onnx.ModelProto) -> tuple[str, ...]:
    """The files an ONNX keeps weights in, relative to its folder; each must exist and stay inside it."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    locations = sorted(
        {ExternalDataInfo(t).location for t in model.graph.initializer if uses_external_data(t)}
    )
    for location in locations:
        relative = PurePosixPath(location)
        if relative.is_absolute() or ".." in relative.parts:
            raise ArtifactError(str(path), f"keeps weights in {location!r}, outside its own folder")
        if not (path.parent / relative).is_file():
            raise ArtifactError(
                str(path),
                f"keeps its weights in {location}, which is missing",
                hint=f"copy it beside {path.name}",
            )
    return tuple(locations)


def _check_engines(engines: list[DeployArtifact]) -> None:
    """Engines for several GPUs: one per compute capability, with the same spec, I/O and profiles."""
    first = engines[0]
    seen: dict[str, Path] = {}
    for engine in engines:
        assert engine.engine is not None
        cc = engine.engine.compute_capability
        if cc in seen:
            raise ArtifactError(
                str(engine.path),
                f"is built for compute capability {cc}, as {seen[cc].name} is; "
                "Triton picks one engine per GPU type",
                hint="give one engine per compute capability",
            )
        seen[cc] = engine.path
        if engine.interface() != first.interface():
            what = _first_difference(first, engine)
            raise ArtifactError(
                str(engine.path),
                f"differs from {first.path.name} in its {what}; one Triton model serves one interface",
                hint="build every engine from the same ONNX and --profile options",
            )


def _first_difference(a: DeployArtifact, b: DeployArtifact) -> str:
    if a.spec.to_dict() != b.spec.to_dict():
        return "spec"
    if a.inputs != b.inputs or a.outputs != b.outputs:
        return "inputs or outputs (names, data types or shapes)"
    return "optimization profiles"
