"""The ``fp16``, ``calibrate`` and ``accuracy`` stages: FP32 ONNX in, checked variants out.

``calibrate`` lives here; ``to_fp16`` in ``fp16_stage`` and ``accuracy`` in ``accuracy_stage``, imported
here so that the three are found in one place."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmexport.core.artifact import LoadedArtifact
from mmexport.core.errors import ConfigError, PrecisionError
from mmexport.core.manifest import CalibrationMethod, Precision, Validation
from mmexport.core.progress import Progress, no_progress
from mmexport.core.spec import ModelSpec
from mmexport.precision import calib_cache
from mmexport.precision.accuracy import (
    AccuracyReport,
    evaluate,
)
from mmexport.precision.accuracy_stage import DEFAULT_EVAL_SAMPLES, accuracy, require_cuda_provider
from mmexport.precision.collect import collect_stats
from mmexport.precision.common import (
    Budget,
    ShapeCoverage,
    SourceModel,
    SpecFeeds,
    check_agreement,
    check_output,
    coverage_summary,
    derived_manifest,
    evaluation_data,
    feeds_of,
    load_source_model,
    open_data,
    open_evaluation,
    phase,
    staged_output,
)
from mmexport.precision.fp16_stage import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MIN_COSINE,
    Fp16Config,
    Fp16Result,
    to_fp16,
)
from mmexport.precision.qdq import (
    DEFAULT_LAYOUT,
    QdqResult,
    check_layout,
    choose_ranges,
    insert_qdq,
    quantizable_nodes,
    quantized_tensors,
)
from mmexport.precision.sensitivity import BranchCost, BudgetResult, branch_costs, fit_budget
from mmexport.precision.stage_result import StageResult, rate_note, report_dict
from mmexport.precision.stats import DEFAULT_PERCENTILE, METHODS

DEFAULT_CALIBRATION_SAMPLES = 512
CALIBRATION_BUDGET = Budget(real=DEFAULT_CALIBRATION_SAMPLES, option="--samples")
RECOMMENDED_SAMPLES = 500  # TensorRT's guidance for calibration sets
BUDGET_REASON = "kept in FP32 for --max-accuracy-drop"
RANDOM_DATA_NOTE = (
    "calibrated on random feeds from the spec, not on real data: activation ranges may not match "
    "what the model sees in use; give --data with real samples"
)


log = logging.getLogger(__name__)


@dataclass
class CalibrationConfig:
    method: str = CalibrationMethod.MINMAX  # entropy clips ReLU outputs: docs/precision.md
    percentile: float = DEFAULT_PERCENTILE
    samples: int | None = None  # None: 512 of real data, 32 random feeds (said in a note)
    batch_size: int = DEFAULT_BATCH_SIZE
    trt_version: str = calib_cache.DEFAULT_TRT_VERSION
    max_accuracy_drop: float | None = None  # points
    sensitivity: bool | None = None  # None: when the evaluation data has labels
    layout: str = DEFAULT_LAYOUT  # the runtime the Q/DQ pattern is laid out for (qdq.LAYOUTS)
    min_cosine: float | None = None  # gates on the evaluation: the model is refused below / above
    max_abs_diff: float | None = None

    def __post_init__(self) -> None:
        check_layout(self.layout)
        if self.method not in list(CalibrationMethod):
            raise ConfigError(
                f"method must be one of {', '.join(METHODS)}, got {self.method!r}", fields=("method",)
            )
        if not 0.0 < self.percentile <= 100.0:
            raise ConfigError(
                f"percentile must be in (0, 100], got {self.percentile}", fields=("percentile",)
            )
        calib_cache.trt_version_number(self.trt_version)  # refuse a bad --trt-version before any work
        if (self.samples is not None and self.samples < 1) or self.batch_size < 1:
            raise ConfigError(
                f"samples and batch_size must be >= 1, got {self.samples}, {self.batch_size}",
                fields=("samples", "batch_size"),
            )


@dataclass
class CalibrationResult(StageResult):
    samples: int = 0  # calibration samples seen
    cache: Path | None = None  # TensorRT's native calibration cache beside the model
    sensitivity: list[BranchCost] = field(default_factory=list)  # costliest branch first


def calibration_cache_name(output: str | Path) -> str:
    """``model.int8.onnx`` -> ``model.int8.calib``."""
    return f"{Path(output).stem}.calib"


def calibrate(
    model: str | Path | LoadedArtifact,
    output: str | Path,
    *,
    data: Any = None,
    config: CalibrationConfig | None = None,
    eval_data: Any = None,
    eval_samples: int | None = None,
    spec: ModelSpec | str | Path | None = None,
    progress: Progress = no_progress,
) -> CalibrationResult:
    """INT8 Q/DQ variant of an FP32 artifact plus TensorRT's native calibration cache beside it.

    ``eval_samples=0`` skips the evaluation (then neither sensitivity nor a budget can be asked);
    None evaluates 500 samples of real data, 32 random feeds. Per-branch sensitivity runs when the
    evaluation data has labels, or when ``config.sensitivity`` asks for it.
    """
    config = config or CalibrationConfig()
    gated = config.min_cosine is not None or config.max_abs_diff is not None
    if eval_samples == 0 and (config.max_accuracy_drop is not None or gated):
        budget = config.max_accuracy_drop is not None
        fields = ("max_accuracy_drop",) if budget else ("min_cosine", "max_abs_diff")
        verb = "needs" if budget else "need"
        raise ConfigError(
            f"{' and '.join(fields)} {verb} evaluation samples (eval_samples >= 1)",
            fields=(*fields, "eval_samples"),
        )
    seconds: dict[str, float] = {}
    source = load_source_model(model, spec=spec)
    check_output(source, output)
    # the output is taken before any work: one that cannot be written is refused first
    with staged_output(output) as staged:
        t0 = time.perf_counter()
        calib = open_data(
            data,
            source,
            split="calibration",
            samples=config.samples,
            batch_size=config.batch_size,
            budget=CALIBRATION_BUDGET,
            purpose=f"calibrating ({config.method}) on",
        )
        coverage = ShapeCoverage(source.spec)
        asked = calib.samples if isinstance(calib, SpecFeeds) else config.samples or CALIBRATION_BUDGET.real
        tick = phase(progress, "calibrating", asked)
        # statistics only for the tensors the Q/DQ model quantizes (all of them are in the cache too)
        tensors = quantized_tensors(source.graph.proto, layout=config.layout)
        histograms = config.method != CalibrationMethod.MINMAX  # min/max need no histogram
        stats, seen = collect_stats(
            source.graph, feeds_of(calib, coverage), tensors=tensors, progress=tick, histograms=histograms
        )
        amax = choose_ranges(source.graph.proto, stats, config.method, config.percentile)
        seconds["calibrate"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        quantized = insert_qdq(source.graph, amax, layout=config.layout)  # weights read from the file
        costs: list[BranchCost] = []
        kept: list[str] = []
        notes = [f"skipped {node}: {why}" for node, why in quantized.skipped.items()]
        if isinstance(calib, SpecFeeds):
            notes.append(RANDOM_DATA_NOTE)
        if config.samples is not None and seen < config.samples:
            notes.append(
                f"calibrated on {seen} samples: the data holds fewer than --samples {config.samples}"
            )
        if seen < RECOMMENDED_SAMPLES and not isinstance(calib, SpecFeeds):
            notes.append(f"{seen} calibration samples; TensorRT recommends about {RECOMMENDED_SAMPLES}")
        if config.method != "percentile" and config.percentile != DEFAULT_PERCENTILE:
            notes.append(f"--percentile applies to --method percentile only; ignored with {config.method}")
        if eval_samples == 0 and eval_data is not None:
            notes.append("--eval-data ignored: --eval-samples 0 asks for no evaluation")
        eval_source: Any = None
        total: int | None = None
        if eval_samples != 0:
            eval_source, total = open_evaluation(
                source, evaluation_data(source, data, eval_data, notes), eval_samples
            )
            quantized, costs, kept = _fit_budget(
                source, amax, quantized, config, eval_source, total, progress
            )
        staged.write(quantized.model)  # evaluated from the file it will be
        accuracy = None
        if eval_source is not None:
            accuracy = _evaluate_int8(source, staged.path, eval_source, total, progress)
            if config.sensitivity is None and accuracy.labelled and not costs:
                costs = _sensitivity(source, amax, eval_source, total, progress)
        warnings = _int8_notes(accuracy, quantized, config, kept, notes)
        seconds["evaluate"] = time.perf_counter() - t0
        notes.append(rate_note("calibration", seen, seconds["calibrate"]))
        if accuracy is not None:
            notes.append(rate_note("evaluation", accuracy.samples, seconds["evaluate"]))
        cache_name = calibration_cache_name(output)
        scales = quantized.activation_scales  # exactly what the written Q/DQ model quantizes
        cache_text = calib_cache.format_cache(scales, config.method, config.trt_version)
        manifest = derived_manifest(
            source,
            Precision.INT8,
            "calibrate",
            {
                "method": config.method,
                "layout": config.layout,
                "percentile": config.percentile if config.method == "percentile" else None,
                "samples": seen,
                "batch_size": config.batch_size,
                "data": calib.description,
                "data_sha256": calib.fingerprint(),
                "shape_coverage": coverage.as_dict(),
                "quantized_nodes": len(quantized.quantized_nodes),
                "kept_fp32_branches": kept,
                "fp32_nodes": dict(quantized.skipped),  # quantizable nodes left in FP32, with the reason
                "max_accuracy_drop": config.max_accuracy_drop,
                "calibration_cache": {
                    "file": cache_name,
                    "trt_version": config.trt_version,
                    "sha256": hashlib.sha256(cache_text.encode("utf-8")).hexdigest(),  # written as UTF-8
                },
            },
        )
        manifest.validation = Validation(
            sensitivity=[asdict(c) for c in costs], accuracy=report_dict(accuracy)
        )
        if warnings:
            manifest.validation.extra["warnings"] = warnings
        written = staged.publish(manifest, companions={cache_name: cache_text})
    notes.insert(0, f"shape coverage: {coverage_summary(coverage)}")
    cache = written.path.parent / cache_name
    return CalibrationResult(
        written.path, accuracy, notes, seconds, written, samples=seen, cache=cache, sensitivity=costs
    )


def _int8_notes(
    accuracy: AccuracyReport | None,
    quantized: QdqResult,
    config: CalibrationConfig,
    kept: list[str],
    notes: list[str],
) -> list[str]:
    """Check the evaluation against the gates (a PrecisionError when it fails them), add what it
    says to ``notes`` and return its warnings."""
    if accuracy is None:
        return []
    warnings = check_agreement(
        accuracy,
        "INT8",
        min_cosine=config.min_cosine,
        max_abs_diff=config.max_abs_diff,
        hint="calibrate on real data (--data), try another --method, or keep branches in FP32 "
        "with --max-accuracy-drop",
    )
    notes += accuracy.warnings() + warnings
    if config.sensitivity is None and not accuracy.labelled and config.max_accuracy_drop is None:
        notes.append(
            "per-branch sensitivity not measured: the evaluation data has no labels "
            "(--sensitivity measures it as top-1 agreement)"
        )
    if config.max_accuracy_drop is not None and not accuracy.labelled:
        notes.append(
            "--max-accuracy-drop measured as top-1 disagreement with FP32: the evaluation data has no labels"
        )
    budget_kept = [n for n, why in quantized.skipped.items() if why == BUDGET_REASON]
    if kept:
        notes.append(
            f"kept in FP32 for --max-accuracy-drop: branch(es) {', '.join(kept)} "
            f"({len(budget_kept)} node(s) of them stay FP32, the rest is INT8 again)"
        )
    return warnings


def _fit_budget(
    source: SourceModel,
    amax: dict[str, float],
    quantized: QdqResult,
    config: CalibrationConfig,
    eval_source: Any,
    total: int | None,
    progress: Progress,
) -> tuple[QdqResult, list[BranchCost], list[str]]:
    """Per-branch sensitivity when asked for, and the Q/DQ model that meets
    ``--max-accuracy-drop`` (the branches it keeps in FP32)."""
    costs: list[BranchCost] = []
    kept: list[str] = []
    if config.sensitivity or config.max_accuracy_drop is not None:
        costs = _sensitivity(source, amax, eval_source, total, progress)
    if config.max_accuracy_drop is not None:
        budget = fit_budget(
            source.graph,
            amax,
            source.spec,
            eval_source.batches,
            costs,
            config.max_accuracy_drop,
            source=eval_source.description,
        )
        if not budget.met:
            raise PrecisionError(
                f"no INT8 variant meets --max-accuracy-drop {config.max_accuracy_drop}: even with every "
                f"branch in FP32 the drop is {budget.drop_points}; nothing written"
            )
        kept = budget.kept_fp32
        quantized = insert_qdq(source.graph, amax, nodes=budget.quantized_nodes, layout=config.layout)
        quantized.skipped.update({n: BUDGET_REASON for n in _fp32_nodes(source, budget)})
    return quantized, costs, kept


def _evaluate_int8(
    source: SourceModel, staged: Path, eval_source: Any, total: int | None, progress: Progress
) -> AccuracyReport:
    """FP32 against the staged INT8 file. The reference runs from its graph in memory, its weights
    read by onnxruntime from the file; the INT8 file's weights are dequantized once, at load."""
    return evaluate(
        [("fp32", "fp32", source.graph), ("int8", "int8", staged)],
        eval_source.batches(),
        source.spec,
        source=eval_source.description,
        progress=phase(progress, "evaluating", total),
    )


def _sensitivity(
    source: SourceModel, amax: dict[str, float], eval_source: Any, total: int | None, progress: Progress
) -> list[BranchCost]:
    log.info("measuring per-branch sensitivity (--no-sensitivity to skip)")
    costs, _ = branch_costs(
        source.graph,  # weights read from the file, by the Q/DQ insertion and by onnxruntime
        amax,
        source.spec,
        eval_source.batches,
        source=eval_source.description,
        progress=phase(progress, "sensitivity", total),
    )
    return costs


def _fp32_nodes(source: SourceModel, budget: BudgetResult) -> list[str]:
    """Quantizable nodes the budget left in FP32."""
    chosen = set(budget.quantized_nodes)
    return [n.name for n in quantizable_nodes(source.graph.proto) if n.name not in chosen]


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CALIBRATION_SAMPLES",
    "DEFAULT_EVAL_SAMPLES",
    "DEFAULT_MIN_COSINE",
    "CalibrationConfig",
    "CalibrationResult",
    "Fp16Config",
    "Fp16Result",
    "StageResult",
    "accuracy",
    "calibrate",
    "calibration_cache_name",
    "require_cuda_provider",
    "to_fp16",
]
