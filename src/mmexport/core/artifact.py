"""An artifact loaded once: its path, its manifest, its sha256 and (on demand) its ONNX proto.

A command reads a file's manifest, hashes it and parses it once, then passes this object to
every stage that needs any of them, instead of a path that each stage would read again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mmexport.core.errors import ArtifactError
from mmexport.core.files import sha256_file
from mmexport.core.manifest import Manifest, check_files, read_manifest
from mmexport.core.onnx_file import NO_GRAPH, check_file, read_onnx
from mmexport.core.onnx_mapped import MappedModel, read_mapped
from mmexport.core.spec import ModelSpec

if TYPE_CHECKING:
    import onnx


@dataclass(eq=False)
class LoadedArtifact:
    """One artifact file; ``sha256`` and ``model`` are computed on first use, then kept."""

    path: Path
    manifest: Manifest | None
    _sha256: str | None = field(default=None, repr=False)
    _model: onnx.ModelProto | None = field(default=None, repr=False)
    _graph: MappedModel | None = field(default=None, repr=False)
    _verified: bool = field(default=False, repr=False)

    @property
    def sha256(self) -> str:
        """The file's sha256, hashed once."""
        if self._sha256 is None:
            self._sha256 = sha256_file(self.path)
        return self._sha256

    @property
    def model(self) -> onnx.ModelProto:
        """The ONNX proto with its external weights, parsed once (refusing a graph without nodes,
        and a manifest whose spec does not describe the graph, as ``Session`` does)."""
        if self._model is None:
            model = read_onnx(self.path, nodes=True)
            if self.manifest is not None:
                check_spec_matches(self.path, self.manifest.spec, graph_inputs(model))
                check_labels_match(self.path, self.manifest.spec, model)
            self._model = model
        return self._model

    @property
    def graph(self) -> MappedModel:
        """The model with its large weights left in the file (read in milliseconds, checked as
        ``model`` is): what a stage needs that looks at the graph and lets onnxruntime read the
        weights. Read once."""
        if self._graph is None:
            if self._model is not None and not self.path.is_file():
                return MappedModel(self._model, self.path)
            mapped = read_mapped(self.path)
            if not mapped.proto.graph.node:
                raise ArtifactError(str(self.path), NO_GRAPH)
            if self.manifest is not None:
                check_spec_matches(self.path, self.manifest.spec, graph_inputs(mapped.proto))
                check_labels_match(self.path, self.manifest.spec, mapped.proto)
            self._graph = mapped
        return self._graph

    @property
    def parsed(self) -> bool:
        """Whether the proto has been parsed already (so reading ``model`` costs nothing)."""
        return self._model is not None

    def verify(self) -> None:
        """Refuse a file (or its external data) that is not what its manifest records; once."""
        if self.manifest is not None and not self._verified:
            check_files(self.path, self.manifest, sha256=self.sha256)
            self._verified = True

    def require_manifest(self, hint: str) -> Manifest:
        """The manifest, or an ArtifactError saying the file has none."""
        if self.manifest is None:
            raise ArtifactError(str(self.path), f"has no manifest ({self.path.name}.json)", hint=hint)
        return self.manifest


def load_artifact(
    path: str | Path | LoadedArtifact,
    *,
    manifest: Manifest | None = None,
    sha256: str | None = None,
    model: onnx.ModelProto | None = None,
) -> LoadedArtifact:
    """``path`` and its manifest (read once; None when there is none); a LoadedArtifact passes
    through. ``manifest``, ``sha256``, ``model``: what the caller holds already (a stage that
    has just written the file)."""
    if isinstance(path, LoadedArtifact):
        return path
    path = check_file(path)
    found = manifest if manifest is not None else read_manifest(path)
    return LoadedArtifact(path, found, sha256, model, _verified=sha256 is not None and manifest is not None)


GraphInput = tuple[str, tuple[int | str, ...]]
"""An ONNX graph input as the spec check sees it: its dtype name and its axes (a size, or a name
for a dynamic axis)."""


def graph_inputs(model: onnx.ModelProto) -> dict[str, GraphInput]:
    """The graph's inputs (weights stored as initializers left out), by name."""
    import onnx

    constants = {init.name for init in model.graph.initializer}
    found: dict[str, GraphInput] = {}
    for value in model.graph.input:
        if value.name in constants:
            continue
        tensor = value.type.tensor_type
        try:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        except (KeyError, ValueError, TypeError):
            dtype = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
        axes = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else d.dim_param or f"{value.name}.{i}"
            for i, d in enumerate(tensor.shape.dim)
        )
        found[value.name] = (dtype, axes)
    return found


def check_spec_matches(path: Path, spec: ModelSpec, graph: dict[str, GraphInput]) -> None:
    """The manifest's spec must describe this graph: same input names, dtypes, ranks and fixed axes
    (what ``Session`` checks against the backend's inputs; every stage that parses an artifact
    checks it too, so that an edited spec is refused the same way everywhere)."""
    if sorted(spec.input_names) != sorted(graph):
        raise ArtifactError(
            str(path),
            f"the manifest's inputs ({', '.join(spec.input_names)}) are not the graph's ({', '.join(graph)})",
            hint="was the file replaced after its manifest was written?",
        )
    for ours in spec.inputs:
        dtype, axes = graph[ours.name]
        same_axes = len(ours.shape) == len(axes) and all(
            not (isinstance(a, int) and isinstance(b, int) and a != b)
            for a, b in zip(ours.shape, axes, strict=True)
        )
        if ours.dtype != dtype or not same_axes:
            raise ArtifactError(
                str(path),
                f"input {ours.name!r} is {ours.dtype} {list(ours.shape)} in the manifest but "
                f"{dtype} {list(axes)} in the graph",
                hint="was the file replaced after its manifest was written?",
            )


def check_labels_match(path: Path, spec: ModelSpec, model: onnx.ModelProto) -> None:
    """An output's labels must be as many as the classes its graph output has (its last axis, where
    fixed): an edited label list would otherwise mislabel every prediction, or call good data bad."""
    shapes = {o.name: o.type.tensor_type.shape.dim for o in model.graph.output}
    for out in spec.outputs:
        dims = shapes.get(out.name)
        if out.labels is None or not dims or not dims[-1].HasField("dim_value"):
            continue
        classes = dims[-1].dim_value
        if classes > 0 and classes != len(out.labels):
            raise ArtifactError(
                str(path),
                f"output {out.name!r} has {classes} classes in the graph but the manifest lists "
                f"{len(out.labels)} labels",
                hint="was the manifest edited after the export?",
            )
