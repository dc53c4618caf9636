"""The ``to-onnx`` stage: load, export, gate, (simplify, gate again), publish with a manifest."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch

from mmexport.core.artifact import LoadedArtifact, load_artifact
from mmexport.core.errors import MmexportError, ParityError
from mmexport.core.files import output_folder, sha256_file, staging_dir
from mmexport.core.manifest import (
    ArtifactKind,
    Manifest,
    Precision,
    Producer,
    Source,
    Validation,
    publish_artifact,
)
from mmexport.core.onnx_file import read_onnx
from mmexport.core.progress import Progress, no_progress
from mmexport.core.spec import INT_DTYPES, ModelSpec
from mmexport.export.loader import LoadedModel, load_model
from mmexport.export.onnx_export import ExportConfig, ExportInfo, export_onnx, normalize_dims
from mmexport.export.parity import ParityConfig, ParityReport, format_shapes, run_parity

log = logging.getLogger(__name__)


@dataclass
class ToOnnxResult:
    path: Path
    manifest_path: Path
    manifest: Manifest
    parity: ParityReport
    simplified: bool
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    artifact: LoadedArtifact | None = None  # what was written, loaded: pass it to the next stage


def to_onnx(
    reference: str | torch.nn.Module | None,
    output: str | Path,
    *,
    spec: ModelSpec | Mapping[str, Any] | str | Path | None = None,
    export: ExportConfig | None = None,
    parity: ParityConfig | None = None,
    simplify: bool = False,
    progress: Progress = no_progress,
) -> ToOnnxResult:
    """Export a model to ``output``; raise ParityError (writing nothing) if ONNX != PyTorch.

    ``progress`` counts the parity gate's shape points; notes go through ``logging``."""
    export = export or ExportConfig()
    parity = parity or ParityConfig()
    seconds: dict[str, float] = {}
    with output_folder(output) as output, staging_dir(output) as stage:
        t0 = time.perf_counter()
        loaded = load_model(reference, spec)
        seconds["load"] = time.perf_counter() - t0
        notes = _spec_notes(loaded.spec)
        log.info(f"exporting {loaded.name} with torch.onnx ({export.exporter}, opset {export.opset})")
        staged = stage / output.name
        t0 = time.perf_counter()
        info = export_onnx(loaded.module, loaded.spec, staged, export)
        seconds["export"] = time.perf_counter() - t0
        notes += [
            f"input {name!r} is not used by the model: no node of the graph reads it"
            for name in info.unused_inputs
        ]
        notes += info.notes
        t0 = time.perf_counter()
        report = run_parity(loaded.module, staged, loaded.spec, parity, progress=progress)
        if not report.passed:
            raise ParityError(_failure_message(report, info.notes), report=report)
        simplified = False
        if simplify:
            simplified, note, slim_report = _try_simplify(loaded, staged, parity, progress)
            notes.append(note)
            report = slim_report or report
        seconds["parity"] = time.perf_counter() - t0
        manifest = _manifest(loaded, info, staged, output, report, simplified)
        companions = (f"{output.name}.data",) if info.external_data else ()
        manifest_file = publish_artifact(staged, output, manifest, companions=companions)
    model = None if simplified else info.model  # the proto as written, when the export kept it
    artifact = load_artifact(output, manifest=manifest, sha256=manifest.sha256, model=model)
    return ToOnnxResult(output, manifest_file, manifest, report, simplified, notes, seconds, artifact)


def _spec_notes(spec: ModelSpec) -> list[str]:
    """What the user should know about how the gate samples this spec."""
    return [
        f'input {i.name!r} ({i.dtype}) has no "range": the gate feeds it only 0 and 1; '
        'add "range": [low, high) to the spec to cover its real values'
        for i in spec.inputs
        if i.dtype in INT_DTYPES and i.range is None and i.mask_of is None
    ]


def _failure_message(report: ParityReport, export_notes: list[str] | None = None) -> str:
    bad = report.failures
    in_torch = [r for r in bad if r.failed_in == "pytorch"]
    if in_torch:
        first = in_torch[0]
        return (
            f"the model itself fails in PyTorch at shape point {first.point} "
            f"({format_shapes(first.shapes)}): {first.error}; the spec's dims allow sizes the "
            "model does not support, narrow them; nothing written"
        )
    worst = bad[0]
    what = worst.error or f"max abs diff {worst.max_abs:.3g}, max rel diff {worst.max_rel:.3g}"
    traced = [n for n in export_notes or [] if n.startswith("TorchScript traced one path")]
    cause = f"; {traced[0].split(';')[0]}: try --exporter dynamo" if traced else ""
    return (
        f"parity gate failed: ONNX differs from PyTorch in {len(bad)} of {len(report.rows)} "
        f"checks (first: output {worst.output!r} at {worst.point}: {what}){cause}; nothing written"
    )


def _try_simplify(
    loaded: LoadedModel, staged: Path, parity: ParityConfig, progress: Progress
) -> tuple[bool, str, ParityReport | None]:
    """Replace the staged graph by onnxslim's, only if that one keeps the dims and passes the gate."""
    import onnxslim

    log.info("simplifying with onnxslim")
    candidate = staged.with_name(f"simplified-{staged.name}")
    try:
        slim = onnxslim.slim(read_onnx(staged))
        onnx.save(slim, str(candidate))
        normalize_dims(candidate, loaded.spec, external=False)
    except MmexportError as e:
        return False, f"simplification discarded: {e}", None
    except Exception as e:  # onnxslim raises plain exceptions on graphs it cannot handle
        return False, f"simplification skipped: onnxslim failed ({type(e).__name__}: {e})", None
    report = run_parity(loaded.module, candidate, loaded.spec, parity, progress=progress)
    if not report.passed:
        candidate.unlink()
        return False, "simplification discarded: the simplified graph failed the parity gate", None
    before, after = _node_count(staged), _node_count(candidate)
    candidate.replace(staged)
    return True, f"simplified with onnxslim: {before} -> {after} nodes", report


def _node_count(path: Path) -> int:
    return len(read_onnx(path, external_data=False).graph.node)


def _manifest(
    loaded: LoadedModel,
    info: ExportInfo,
    staged: Path,
    output: Path,
    report: ParityReport,
    simplified: bool,
) -> Manifest:
    return Manifest(
        kind=ArtifactKind.ONNX,
        artifact=output.name,
        sha256=sha256_file(staged),
        spec=loaded.spec,
        precision=Precision.FP32,
        source=Source(model=loaded.reference, builtin=loaded.builtin),
        producer=Producer.current(
            "to-onnx",
            exporter=info.exporter,
            opset=info.opset,
            external_data=_external_data(staged) if info.external_data else None,
            simplified=simplified,
        ),
        validation=Validation(parity={"provider": "CPUExecutionProvider", **report.to_dict()}),
    )


def _external_data(staged: Path) -> dict[str, str]:
    data = staged.with_name(f"{staged.name}.data")
    return {"file": data.name, "sha256": sha256_file(data)}
