"""A ModelSpec read from the artifact's own inputs, for ONNX files without a manifest.

A plain ONNX file still loads (inputs come from third-party exporters too), with what its graph
declares: dtypes, ranks and fixed axes are checked as usual; a symbolic dim name shared by
several inputs must agree across them; a dynamic axis without a name gets its own dim
(``<input>.<axis>``). The graph has no ranges, so dynamic dims accept 1 .. 2**31-1 and have no
real opt value: whatever needs one (``bench`` without ``--shape``, TensorRT profiles) asks for it.
"""

from __future__ import annotations

from pathlib import Path

from mmexport.core.artifact import check_spec_matches as core_check_spec_matches
from mmexport.core.errors import ArtifactError
from mmexport.core.spec import DTYPES, DimSpec, InputSpec, ModelSpec, OutputSpec
from mmexport.runtime.backends.base import TensorInfo

UNBOUNDED = 2**31 - 1


def spec_from_graph(path: Path, inputs: list[TensorInfo], outputs: list[TensorInfo]) -> ModelSpec:
    dims: dict[str, DimSpec] = {}
    specs = []
    for info in inputs:
        if info.dtype not in DTYPES:
            raise ArtifactError(
                str(path), f"input {info.name!r} has type {info.dtype}, which mmexport cannot feed"
            )
        shape: list[int | str] = []
        for axis, d in enumerate(info.shape):
            if isinstance(d, int) and d > 0:
                shape.append(d)
                continue
            name = d if isinstance(d, str) else f"{info.name}.{axis}"
            dims.setdefault(name, DimSpec(name, 1, 1, UNBOUNDED))
            shape.append(name)
        specs.append(InputSpec(info.name, "tensor", info.dtype, tuple(shape)))
    return ModelSpec(tuple(specs), tuple(OutputSpec(o.name) for o in outputs), dims)


def check_spec_matches(path: Path, spec: ModelSpec, graph: ModelSpec) -> None:
    """The manifest's spec must describe this graph: same input names, dtypes, ranks and fixed axes."""
    inputs = {i.name: (i.dtype, tuple(i.shape)) for i in graph.inputs}
    core_check_spec_matches(path, spec, inputs)
