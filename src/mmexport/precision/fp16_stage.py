"""The ``fp16`` stage: an FP32 artifact in, an FP16 variant out, written only if it agrees."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmexport.core.artifact import LoadedArtifact
from mmexport.core.errors import PrecisionError
from mmexport.core.manifest import Precision, Validation
from mmexport.core.progress import Progress, no_progress
from mmexport.core.spec import ModelSpec
from mmexport.precision.accuracy import AccuracyReport, RecordedOutputs, evaluate
from mmexport.precision.common import (
    SourceModel,
    check_agreement,
    check_output,
    derived_manifest,
    evaluation,
    evaluation_data,
    feeds_of,
    load_source_model,
    open_data,
    phase,
    staged_output,
)
from mmexport.precision.fp16 import Fp16Scan, convert_fp16, plan_fp16, scan_fp16, spec_for_graph
from mmexport.precision.stage_result import StageResult, report_dict

DEFAULT_MIN_COSINE = 0.99
DEFAULT_BATCH_SIZE = 8

log = logging.getLogger(__name__)


@dataclass
class Fp16Config:
    keep_fp32: tuple[str, ...] = ()
    fp16_io: bool = False
    min_cosine: float | None = DEFAULT_MIN_COSINE
    samples: int = 32  # sample data for the overflow scan and the check
    max_abs_diff: float | None = None


@dataclass
class Fp16Result(StageResult):
    kept_fp32: dict[str, list[str]] = field(default_factory=dict)  # reason -> nodes
    check: AccuracyReport | None = None  # FP16 vs FP32 on the sample data, before writing


def to_fp16(
    model: str | Path | LoadedArtifact,
    output: str | Path,
    *,
    config: Fp16Config | None = None,
    data: Any = None,
    eval_data: Any = None,
    eval_samples: int | None = None,
    spec: ModelSpec | str | Path | None = None,
    progress: Progress = no_progress,
) -> Fp16Result:
    """FP16 variant of an FP32 artifact; refuses (writing nothing) if it disagrees with FP32.

    One FP32 pass over the sample data gives both the activation ranges and the reference outputs
    of the check; ``eval_samples`` (None: 500 of real data; with neither data nor eval data, the
    check on random feeds is the report) adds an evaluation on held-out data."""
    config = config or Fp16Config()
    seconds: dict[str, float] = {}
    source = load_source_model(model, spec=spec)
    check_output(source, output)
    # the output is taken before any work: one that cannot be written is refused first
    with staged_output(output) as staged:
        t0 = time.perf_counter()
        sample = open_data(
            data, source, split="calibration", samples=config.samples, batch_size=DEFAULT_BATCH_SIZE
        )
        total = getattr(sample, "samples", None) or config.samples
        log.info(f"scanning activation ranges on {sample.description}; --samples N to change")
        scan = scan_fp16(source.graph, feeds_of(sample), progress=phase(progress, "scanning", total))
        plan = plan_fp16(source.graph.proto, stats=scan.amax, keep_patterns=config.keep_fp32)
        converted = convert_fp16(source.graph, plan, fp16_io=config.fp16_io)
        graph_spec = spec_for_graph(source.spec, converted)  # float16 inputs with --fp16-io
        seconds["convert"] = time.perf_counter() - t0
        staged.write(converted)
        del converted  # onnxruntime reads the staged file: the proto's weights can go
        t0 = time.perf_counter()
        check, warnings = _check(source, staged.path, sample, scan, config, progress)
        seconds["check"] = time.perf_counter() - t0
        rate = scan.samples / max(seconds["convert"] + seconds["check"], 1e-9)
        t0 = time.perf_counter()
        eval_notes: list[str] = []
        eval_source = evaluation_data(source, data, eval_data, eval_notes)
        accuracy: AccuracyReport | None = None
        if eval_samples is None and eval_source is None and source.builtin is None:
            accuracy = check  # random feeds again would say what the check said: it is the report
            eval_notes = ["evaluated by the check (random feeds, no labels); --eval-data for held-out data"]
        elif eval_samples is None or eval_samples > 0:
            variants = [("fp32", "fp32", source.graph), ("fp16", "fp16", staged.path)]
            accuracy = evaluation(source, eval_source, eval_samples, variants, progress=progress)
        seconds["evaluate"] = time.perf_counter() - t0
        kept = plan.by_reason()
        details = {
            "fp16_io": config.fp16_io,
            "kept_fp32": kept,
            "fp32_values": plan.values,
            "keep_patterns": list(config.keep_fp32),
            "data": sample.description,
            "data_sha256": sample.fingerprint(),
            "samples": scan.samples,
        }
        manifest = derived_manifest(source, Precision.FP16, "fp16", details)
        manifest.spec = graph_spec
        manifest.validation = Validation(fp16_check=check.to_dict(), accuracy=report_dict(accuracy))
        if warnings:
            manifest.validation.extra["warnings"] = warnings
        written = staged.publish(manifest)
    notes = [f"kept in FP32 ({len(nodes)} nodes): {reason}" for reason, nodes in kept.items()]
    notes += [f"--keep-fp32 {p!r} matched no op type or node name" for p in plan.unmatched]
    notes += eval_notes
    notes += accuracy.warnings() if accuracy is not None else []
    notes += warnings
    notes.append(f"scan, conversion and check: {scan.samples} samples, {rate:.3g} samples/s")
    return Fp16Result(written.path, accuracy, notes, seconds, written, kept_fp32=kept, check=check)


def _check(
    source: SourceModel, staged: Path, sample: Any, scan: Fp16Scan, config: Fp16Config, progress: Progress
) -> tuple[AccuracyReport, list[str]]:
    """The staged FP16 file against the scan's FP32 outputs on the same samples, and the
    agreement warnings; a PrecisionError when it fails the gates (or FP32 itself is not finite)."""
    log.info(f"checking FP16 against FP32 on the same {scan.samples} samples")
    check = evaluate(
        [("fp32", "fp32", RecordedOutputs(scan.outputs, source.spec)), ("fp16", "fp16", staged)],
        sample.batches(),
        source.spec,
        source=sample.description,
        progress=phase(progress, "checking", scan.samples),
    )
    if check.reference_nonfinite:
        raise PrecisionError(
            f"the FP32 model itself gives NaN or inf on {check.reference_nonfinite} of {check.samples} "
            f"samples of {sample.description}; no FP16 comparison is possible on them; nothing written",
            report=check,
            hint="give real samples with --data, or check the spec's ranges (e.g. a pad id inside an "
            "input's range makes all-padding rows)",
        )
    warnings = check_agreement(
        check,
        "FP16",
        min_cosine=config.min_cosine,
        max_abs_diff=config.max_abs_diff,
        hint="keep more of the graph in FP32 with --keep-fp32 OP_OR_NODE",
    )
    return check, warnings
