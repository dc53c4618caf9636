"""Specs of the parts of a split model, derived from the model's spec.

An encoder takes some model inputs: its spec keeps them as they are (dtype, shape, range,
preprocess) with the dims they use. Its outputs' dims are worked out from its exported graph and
from running it: an axis the graph fixes stays a number; a dynamic axis whose size equals a
model dim at every checked shape point carries that dim (``batch``, ``seq``); any other dynamic
axis (e.g. image tokens, a function of height and width) becomes a new dim named
``<output>_<axis>`` whose range is the sizes seen at the model's min, opt, max and random points
(output sizes are assumed to grow with input sizes, so the corners bound them; the composed
parity gate checks the random points).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmexport.core.errors import ExportError
from mmexport.core.onnx_file import read_onnx
from mmexport.core.spec import DTYPES, DimSpec, ModelSpec, ShapePoint
from mmexport.export.parity import torch_outputs
from mmexport.models.split_protocol import EncoderPart, MaskWhenAbsent

FLAG_MODALITY = "tensor"


def encoder_spec(model: ModelSpec, encoder: EncoderPart) -> ModelSpec:
    """The encoder's inputs as the model declares them, its outputs by name."""
    inputs = [model.input(name) for name in encoder.inputs]
    used = {d for i in inputs for d in i.dim_names}
    return ModelSpec.from_dict(
        {
            "inputs": [i.to_dict() for i in inputs],
            "outputs": list(encoder.outputs),
            "dims": {n: d.to_dict() for n, d in model.dims.items() if n in used},
        }
    )


@dataclass(frozen=True)
class OutputShape:
    """One encoder output as the fusion part's input: dtype and shape of ints and dim names."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


def output_shapes(
    encoder: EncoderPart,
    spec: ModelSpec,
    onnx_path: Path,
    points: Sequence[tuple[str, ShapePoint]],
) -> tuple[list[OutputShape], dict[str, DimSpec]]:
    """The encoder's outputs with named dims, and the new dims they introduce (see the module doc)."""
    graph = read_onnx(onnx_path, external_data=False)
    declared = {o.name: o.type.tensor_type.shape.dim for o in graph.graph.output}
    sizes: dict[str, list[tuple[int, ...]]] = {o: [] for o in encoder.outputs}
    dtypes: dict[str, str] = {}
    for k, (_, point) in enumerate(points):
        feed = spec.sample_feed(point, seed=k)
        results = torch_outputs(encoder.module, feed, call_kwargs=spec.call_kwargs)
        for name, value in zip(encoder.outputs, results, strict=True):
            sizes[name].append(value.shape)
            dtypes[name] = value.dtype.name
    shapes, new_dims = [], {}
    for name in encoder.outputs:
        if dtypes[name] not in DTYPES:
            raise ExportError(
                f"part {encoder.name!r} output {name!r} has dtype {dtypes[name]}, not one of {DTYPES}"
            )
        if name not in declared:
            raise ExportError(f"part {encoder.name!r}: the exported graph has no output {name!r}")
        dims = declared[name]
        if len(dims) != len(sizes[name][0]):
            raise ExportError(
                f"part {encoder.name!r} output {name!r}: rank {len(dims)} in the graph, "
                f"{len(sizes[name][0])} in PyTorch"
            )
        shape: list[int | str] = []
        for axis, dim in enumerate(dims):
            seen = [s[axis] for s in sizes[name]]
            if dim.HasField("dim_value"):
                shape.append(int(dim.dim_value))
                continue
            carried = _carried_dim(dim.dim_param, seen, spec, points)
            if carried is not None:
                shape.append(carried)
                continue
            dim_name = f"{name}_{axis}"
            opt = next((s for (label, _), s in zip(points, seen, strict=True) if label == "opt"), seen[0])
            new_dims[dim_name] = DimSpec(dim_name, min(seen), opt, max(seen))
            shape.append(dim_name)
        shapes.append(OutputShape(name, dtypes[name], tuple(shape)))
    return shapes, new_dims


def _carried_dim(
    symbol: str, seen: list[int], spec: ModelSpec, points: Sequence[tuple[str, ShapePoint]]
) -> str | None:
    """The model dim this axis follows at every point: the graph's symbol first, else the only match."""
    matches = [d for d in spec.dims if [p[d] for _, p in points] == seen]
    if symbol in matches:
        return symbol
    return matches[0] if len(matches) == 1 else None


def fusion_spec(
    model: ModelSpec,
    encoders: Sequence[EncoderPart],
    shapes: Mapping[str, list[OutputShape]],
    new_dims: Mapping[str, DimSpec],
    batch: str | None,
) -> ModelSpec:
    """The fusion part's spec: every encoder output, a bool [batch] flag per masked part, the
    model's outputs (labels and tolerances kept)."""
    inputs: list[dict] = [
        {"name": s.name, "modality": FLAG_MODALITY, "dtype": s.dtype, "shape": list(s.shape)}
        for e in encoders
        for s in shapes[e.name]
    ]
    for e in encoders:
        if isinstance(e.absent, MaskWhenAbsent):
            if batch is None:
                raise ExportError(
                    f"part {e.name!r} is masked when absent, which needs a batch dim at axis 0 of every input"
                )
            inputs.append(
                {"name": e.absent.flag, "modality": FLAG_MODALITY, "dtype": "bool", "shape": [batch]}
            )
    used = {d for i in inputs for d in i["shape"] if isinstance(d, str)}
    dims = {n: d.to_dict() for n, d in model.dims.items() if n in used}
    dims.update({n: d.to_dict() for n, d in new_dims.items() if n in used})
    return ModelSpec.from_dict(
        {"inputs": inputs, "outputs": [o.to_dict() for o in model.outputs], "dims": dims}
    )


def constant_values(encoder: EncoderPart, shapes: list[OutputShape]) -> dict[str, np.ndarray]:
    """The null embedding of a part declared constant when absent, checked against its outputs."""
    values = getattr(encoder.absent, "values", {})
    out = {}
    for s in shapes:
        if s.name not in values:
            raise ExportError(f"part {encoder.name!r}: its constant for absence lacks output {s.name!r}")
        value = values[s.name].detach().cpu().numpy().astype(s.dtype)
        fixed = [d for d in s.shape[1:]]
        if value.ndim != len(fixed) or any(
            isinstance(d, int) and d != v for d, v in zip(fixed, value.shape, strict=True)
        ):
            raise ExportError(
                f"part {encoder.name!r}: its constant for {s.name!r} has shape {list(value.shape)}, "
                f"the output one sample {fixed}"
            )
        out[s.name] = value
    return out
