"""``to-onnx --split``: one ONNX per modality encoder plus the fusion part, and a composition manifest.

The model offers its parts through ``split_parts()`` (``mmexport.models.split_protocol``). Each
part is exported by ``to_onnx`` with its own spec and passes its own parity gate against its
PyTorch module; then the composed parts (run by ``mmexport.runtime.SplitSession``) must equal the
monolithic PyTorch model at the model's shape points, and every declared absence must equal the
PyTorch parts with the same stand-in. Everything is built in a staging folder and moved into
place at the end: a failure writes nothing.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmexport.core.errors import ExportError, ParityError, SpecError
from mmexport.core.manifest import Producer, Source, read_manifest
from mmexport.core.progress import nested
from mmexport.core.spec import CallValue, ModelSpec
from mmexport.export.loader import LoadedModel, load_model
from mmexport.export.onnx_export import ExportConfig
from mmexport.export.parity import (
    ParityConfig,
    ParityReport,
    ParityRow,
    format_shapes,
    parity_rows,
    shape_points,
)
from mmexport.export.stage import ToOnnxResult, to_onnx
from mmexport.export.torch_runner import TorchRunner
from mmexport.models.split_protocol import (
    SPLIT_METHOD,
    ConstantWhenAbsent,
    EncoderPart,
    MaskWhenAbsent,
    SplitParts,
)
from mmexport.split.composition import FILE_NAME, Absent, Composition, Part, Wire
from mmexport.split.files import check_folder, publish_folder, staged_folder
from mmexport.split.session import SplitSession, dim_sizes, stand_in_shape
from mmexport.split.specs import (
    OutputShape,
    constant_values,
    encoder_spec,
    fusion_spec,
    output_shapes,
)

log = logging.getLogger(__name__)


@dataclass
class SplitResult:
    folder: Path
    composition: Composition
    parity: ParityReport  # the composed gate: parts together vs the monolithic model
    parts: dict[str, ToOnnxResult]
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def split_parts_of(loaded: LoadedModel) -> SplitParts:
    """The model's ``split_parts()``, checked against its spec; a clear error when it has none."""
    method = getattr(loaded.module, SPLIT_METHOD, None)
    if not callable(method):
        raise ExportError(
            f"model {loaded.name!r} ({type(loaded.module).__name__}) cannot be split: it has no "
            f"{SPLIT_METHOD}() method",
            hint="implement split_parts() returning mmexport.models.split_protocol.SplitParts "
            "(one EncoderPart per modality and the fusion module), or export it whole without --split",
        )
    parts = method()
    if not isinstance(parts, SplitParts):
        raise ExportError(
            f"{type(loaded.module).__name__}.{SPLIT_METHOD}() returned a {type(parts).__name__}, "
            "not SplitParts"
        )
    _check_parts(parts, loaded)
    return parts


def _check_parts(parts: SplitParts, loaded: LoadedModel) -> None:
    """Names that become files and inputs: part names are plain file names, every encoder takes
    model inputs and every model input has an encoder, encoder outputs and mask flags are unique."""
    spec = loaded.spec
    names = [e.name for e in parts.encoders] + [parts.fusion_name]
    for name in names:
        _check_part_name(name)
    if len(set(names)) < len(names):
        raise SpecError(f"{SPLIT_METHOD}(): part names must be unique, got {', '.join(names)}")
    taken: list[str] = []
    for e in parts.encoders:
        unknown = [n for n in e.inputs if n not in spec.input_names]
        if unknown or not e.inputs:
            what = repr(unknown[0]) if unknown else "no input"
            raise SpecError(
                f"{SPLIT_METHOD}(): part {e.name!r} takes {what}, not a model input",
                hint=f"model inputs: {', '.join(spec.input_names)}",
            )
        taken += e.inputs
    untaken = [n for n in spec.input_names if n not in taken]
    if untaken:
        raise SpecError(f"{SPLIT_METHOD}(): no part takes model input {untaken[0]!r}")
    outputs = [o for e in parts.encoders for o in e.outputs]
    clash = [o for o in outputs if outputs.count(o) > 1 or o in spec.input_names]
    if clash:
        raise SpecError(
            f"{SPLIT_METHOD}(): encoder output {clash[0]!r} is not unique among inputs and outputs"
        )
    _check_flags(parts, [*spec.input_names, *outputs])


_PART_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _check_part_name(name: str) -> None:
    """A part's name names its files (``<name>.onnx``): no folders, nothing hidden, not reserved."""
    if not isinstance(name, str) or not _PART_NAME.fullmatch(name):
        raise SpecError(f"{SPLIT_METHOD}(): part name {name!r} is not a file name (letters, digits, _ . -)")
    if name == Path(FILE_NAME).stem:
        raise SpecError(f"{SPLIT_METHOD}(): part name {name!r} is reserved (the folder's {FILE_NAME})")


def _check_flags(parts: SplitParts, taken: list[str]) -> None:
    """Each mask flag is a new input of the fusion part: not a model input or an encoder output."""
    for e in parts.encoders:
        if isinstance(e.absent, MaskWhenAbsent):
            if e.absent.flag in taken:
                raise SpecError(
                    f"{SPLIT_METHOD}(): part {e.name!r}: its mask flag {e.absent.flag!r} is already the "
                    "name of a model input, an encoder output or another flag"
                )
            taken.append(e.absent.flag)


def to_onnx_split(
    reference: str | torch.nn.Module | None,
    folder: str | Path,
    *,
    spec: Any = None,
    export: ExportConfig | None = None,
    parity: ParityConfig | None = None,
) -> SplitResult:
    """Export the model's parts into ``folder``; raise ParityError (writing nothing) on any mismatch."""
    export = export or ExportConfig()
    parity = parity or ParityConfig()
    folder = Path(folder)
    check_folder(folder)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    loaded = load_model(reference, spec)
    parts = split_parts_of(loaded)
    seconds["load"] = time.perf_counter() - t0
    points = shape_points(loaded.spec, parity)
    with staged_folder(folder) as stage:
        t0 = time.perf_counter()
        results, composition = _export_parts(loaded, parts, stage, export, parity, points)
        seconds["parts"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        composition.write(stage)
        report = composed_gate(loaded, parts, stage, parity)
        seconds["composed_parity"] = time.perf_counter() - t0
        if not report.passed:
            bad = report.failures[0]
            what = bad.error or f"max abs diff {bad.max_abs:.3g}"
            raise ParityError(
                f"composed parity gate failed: the parts together differ from the model in "
                f"{len(report.failures)} of {len(report.rows)} checks (first: output {bad.output!r} at "
                f"{bad.point}: {what}); nothing written",
                report=report,
            )
        composition.validation = {"composed_parity": report.to_dict()}
        composition.write(stage)
        publish_folder(stage, folder)
    notes = [n for r in results.values() for n in r.notes] + list(parts.notes)
    return SplitResult(folder, composition, report, results, notes, seconds)


def _export_parts(
    loaded: LoadedModel,
    parts: SplitParts,
    stage: Path,
    export: ExportConfig,
    parity: ParityConfig,
    points: list[tuple[str, Any]],
) -> tuple[dict[str, ToOnnxResult], Composition]:
    """Every encoder, then the fusion part (its spec from the encoders' outputs), each through
    ``to_onnx`` and its parity gate; the composition that wires them."""

    def export_part(module: torch.nn.Module, name: str, spec: ModelSpec) -> ToOnnxResult:
        with nested():  # the part's own notes, under its name
            return to_onnx(module, stage / f"{name}.onnx", spec=spec, export=export, parity=parity)

    results: dict[str, ToOnnxResult] = {}
    shapes, new_dims, entries = {}, {}, []
    for e in parts.encoders:
        part_spec = with_call_kwargs(encoder_spec(loaded.spec, e), e.module, loaded.spec)
        log.info(f"part {e.name!r} ({', '.join(e.inputs)} -> {', '.join(e.outputs)})")
        results[e.name] = export_part(e.module, e.name, part_spec)
        shapes[e.name], dims = output_shapes(e, part_spec, results[e.name].path, points)
        new_dims.update(dims)
        wires = {n: Wire("input", n) for n in e.inputs}
        absent = _absence(e, shapes[e.name])
        entries.append(_part_entry(e.name, "encoder", results[e.name], wires, list(e.outputs), absent))
    fuse_spec = fusion_spec(loaded.spec, parts.encoders, shapes, new_dims, _batch_dim(loaded))
    fuse_spec = with_call_kwargs(fuse_spec, parts.fusion, loaded.spec)
    outputs = ", ".join(fuse_spec.output_names)
    log.info(f"part {parts.fusion_name!r} ({len(fuse_spec.inputs)} inputs -> {outputs})")
    fused = results[parts.fusion_name] = export_part(parts.fusion, parts.fusion_name, fuse_spec)
    wires = {s.name: Wire("part", e.name, s.name) for e in parts.encoders for s in shapes[e.name]}
    for e in parts.encoders:
        if isinstance(e.absent, MaskWhenAbsent):
            wires[e.absent.flag] = Wire("present", e.name)
    entries.append(_part_entry(parts.fusion_name, "fusion", fused, wires, fuse_spec.output_names, None))
    for result in results.values():
        _mark_part_manifest(result, loaded)
    composition = Composition(
        spec=loaded.spec,
        parts=entries,
        outputs={o: Wire("part", parts.fusion_name, o) for o in loaded.spec.output_names},
        source={"model": loaded.reference, "builtin": loaded.builtin},
        producer=_producer(export),
    )
    return results, composition


def with_call_kwargs(part_spec: ModelSpec, module: torch.nn.Module, model: ModelSpec) -> ModelSpec:
    """The part's spec with those of the model's ``call_kwargs`` that the part's forward() takes
    (a named parameter, or any through ``**kwargs``): a constant such as ``use_cache=False``
    reaches every part that has it, and no part is given one it would refuse."""
    taken = part_call_kwargs(module, model.call_kwargs)
    return dataclasses.replace(part_spec, call_kwargs=taken) if taken else part_spec


def part_call_kwargs(module: torch.nn.Module, call_kwargs: Mapping[str, CallValue]) -> dict[str, CallValue]:
    """The entries of ``call_kwargs`` that ``module.forward`` accepts."""
    if not call_kwargs:
        return {}
    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(call_kwargs)
    named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in call_kwargs.items() if k in named}


def _absence(encoder: EncoderPart, shapes: list[OutputShape]) -> Absent | None:
    """The composition's record of what the encoder's absence means."""
    if isinstance(encoder.absent, MaskWhenAbsent):
        return Absent("mask")
    if isinstance(encoder.absent, ConstantWhenAbsent):
        return Absent("constant", constant_values(encoder, shapes))
    return None


def _part_entry(
    name: str,
    role: str,
    result: ToOnnxResult,
    inputs: dict[str, Wire],
    outputs: list[str],
    absent: Absent | None,
) -> Part:
    return Part(name, role, result.path.name, result.manifest.sha256, "fp32", inputs, outputs, absent)


def _mark_part_manifest(result: ToOnnxResult, loaded: LoadedModel) -> None:
    """A part's manifest names the model it is a part of (not a built-in: synthetic data does not fit it)."""
    manifest = read_manifest(result.path)
    if manifest is None:  # to_onnx always writes one
        raise ExportError(f"{result.path.name} has no manifest")
    manifest.source = Source(model=loaded.reference, part=result.path.stem, composition=FILE_NAME)
    manifest.write(result.path)


def _batch_dim(loaded: LoadedModel) -> str | None:
    firsts = {i.shape[0] if i.shape else None for i in loaded.spec.inputs}
    only = firsts.pop() if len(firsts) == 1 else None
    return only if isinstance(only, str) else None


def _producer(export: ExportConfig) -> dict[str, Any]:
    return Producer.current("to-onnx --split", exporter=export.exporter, opset=export.opset).to_dict()


# -- the composed gate ----------------------------------------------------------------------


def composed_gate(loaded: LoadedModel, parts: SplitParts, folder: Path, config: ParityConfig) -> ParityReport:
    """The parts run by the runtime's SplitSession against the monolithic PyTorch model at the model's
    shape points; then, at the opt point, each declared absence against the PyTorch parts given
    the same stand-in (zeros and a False flag, or the null embedding)."""
    report = ParityReport()
    spec = loaded.spec
    reference = TorchRunner(loaded.module, spec)
    with SplitSession(folder, parallel=False, spin=False) as pipe:
        fuse_spec = pipe.parts[parts.fusion_name].spec
        for k, (name, point) in enumerate(shape_points(spec, config)):
            feed = spec.sample_feed(point, seed=config.seed + k)
            log.info(f"composed parity {name}: {format_shapes({n: list(v.shape) for n, v in feed.items()})}")
            expected = reference.run(feed)
            _compare(report, f"composed {name}", feed, pipe, expected, spec, config)
        feed = spec.sample_feed(spec.example_point(), seed=config.seed)
        for e in parts.encoders:
            if e.absent is None:
                continue
            log.info(f"composed parity with part {e.name!r} absent")
            partial = {n: v for n, v in feed.items() if n not in e.inputs}
            absent = _torch_absent(parts, e.name, partial, fuse_spec, spec)
            expected = dict(zip(spec.output_names, absent, strict=True))
            _compare(report, f"opt, {e.name} absent", partial, pipe, expected, spec, config)
    return report


def _compare(
    report: ParityReport,
    point: str,
    feed: dict[str, np.ndarray],
    pipe: SplitSession,
    expected: dict[str, np.ndarray],
    spec: ModelSpec,
    config: ParityConfig,
) -> None:
    shapes = {n: list(v.shape) for n, v in feed.items()}
    try:
        actual = pipe.run(feed)
    except Exception as e:  # an InputError from a part (a derived dim out of range) or onnxruntime
        text = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
        for out in spec.output_names:
            report.rows.append(ParityRow(point, shapes, out, None, None, 0, 0, False, text, "onnxruntime"))
        return
    report.rows.extend(parity_rows(point, shapes, expected, actual, spec, config))


def _torch_absent(
    parts: SplitParts, gone: str, feed: dict[str, np.ndarray], fuse_spec: ModelSpec, model: ModelSpec
) -> list[np.ndarray]:
    """The PyTorch parts with part ``gone`` replaced as declared (``feed`` lacks its inputs): its
    null embedding, or zeros of the runtime's stand-in shape with its presence flag False."""
    sizes = dim_sizes(model, feed)
    kwargs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for e in parts.encoders:
            if isinstance(e.absent, MaskWhenAbsent):
                shape = stand_in_shape(fuse_spec, e.absent.flag, sizes)
                kwargs[e.absent.flag] = torch.full(shape, e.name != gone, dtype=torch.bool)
            if e.name != gone:
                constants = part_call_kwargs(e.module, model.call_kwargs)
                results = _as_list(e.module(**{n: torch.from_numpy(feed[n]) for n in e.inputs}, **constants))
                kwargs.update(dict(zip(e.outputs, results, strict=True)))
            elif isinstance(e.absent, ConstantWhenAbsent):
                kwargs.update(
                    {
                        n: v.expand(stand_in_shape(fuse_spec, n, sizes)[0], *v.shape)
                        for n, v in e.absent.values.items()
                    }
                )
            else:
                kwargs.update({n: torch.zeros(stand_in_shape(fuse_spec, n, sizes)) for n in e.outputs})
        constants = part_call_kwargs(parts.fusion, model.call_kwargs)
        return [t.numpy() for t in _as_list(parts.fusion(**kwargs, **constants))]


def _as_list(result: Any) -> list[torch.Tensor]:
    return list(result) if isinstance(result, (tuple, list)) else [result]
