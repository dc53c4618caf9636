"""The ``fp16``, ``calibrate`` and ``accuracy`` stages: FP32 ONNX in, checked variants out."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx

from mmexport.core.artifact import LoadedArtifact, load_artifact
from mmexport.core.errors import ArtifactError, ConfigError, MmexportError, PrecisionError
from mmexport.core.manifest import CalibrationMethod, Manifest, Precision, Validation
from mmexport.core.progress import Progress, no_progress
from mmexport.core.spec import ModelSpec
from mmexport.precision import calib_cache
from mmexport.precision.accuracy import (
    ENGINE_SUFFIXES,
    AccuracyReport,
    OnDevice,
    RecordedOutputs,
    check_device,
    evaluate,
)
from mmexport.precision.collect import collect_stats
from mmexport.precision.common import (
    EVAL_BATCH,
    EVAL_BUDGET,
    Budget,
    ShapeCoverage,
    SourceModel,
    SpecFeeds,
    check_agreement,
    check_output,
    coverage_summary,
    derived_manifest,
    evaluation,
    evaluation_data,
    feeds_of,
    load_source_model,
    open_data,
    phase,
    write_onnx,
)
from mmexport.precision.fp16 import convert_fp16, plan_fp16, same_model, scan_fp16, spec_for_graph
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
from mmexport.precision.stats import DEFAULT_PERCENTILE, METHODS

DEFAULT_CALIBRATION_SAMPLES = 512
DEFAULT_EVAL_SAMPLES = EVAL_BUDGET.real
CALIBRATION_BUDGET = Budget(real=DEFAULT_CALIBRATION_SAMPLES, option="--samples")
DEFAULT_BATCH_SIZE = 8
DEFAULT_MIN_COSINE = 0.99
RECOMMENDED_SAMPLES = 500  # TensorRT's guidance for calibration sets
BUDGET_REASON = "kept in FP32 for --max-accuracy-drop"
RANDOM_DATA_NOTE = (
    "calibrated on random feeds from the spec, not on real data: activation ranges may not match "
    "what the model sees in use; give --data with real samples"
)


log = logging.getLogger(__name__)


@dataclass
class Fp16Config:
    keep_fp32: tuple[str, ...] = ()
    fp16_io: bool = False
    min_cosine: float | None = DEFAULT_MIN_COSINE
    samples: int = 32  # sample data for the overflow scan and the check
    max_abs_diff: float | None = None


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
class StageResult:
    path: Path
    accuracy: AccuracyReport | None  # None when the caller asked for no evaluation (eval_samples=0)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    artifact: LoadedArtifact | None = None  # what was written, loaded: pass it to the next stage


def _report(accuracy: AccuracyReport | None) -> dict[str, Any] | None:
    return accuracy.to_dict() if accuracy is not None else None


@dataclass
class Fp16Result(StageResult):
    kept_fp32: dict[str, list[str]] = field(default_factory=dict)  # reason -> nodes
    check: AccuracyReport | None = None  # FP16 vs FP32 on the sample data, before writing


@dataclass
class CalibrationResult(StageResult):
    samples: int = 0  # calibration samples seen
    cache: Path | None = None  # TensorRT's native calibration cache beside the model
    sensitivity: list[BranchCost] = field(default_factory=list)  # costliest branch first


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
    t0 = time.perf_counter()
    sample = open_data(
        data, source, split="calibration", samples=config.samples, batch_size=DEFAULT_BATCH_SIZE
    )
    total = getattr(sample, "samples", None) or config.samples
    log.info(f"scanning activation ranges on {sample.description}; --samples N to change")
    scan = scan_fp16(source.model, feeds_of(sample), progress=phase(progress, "scanning", total))
    plan = plan_fp16(source.model, stats=scan.amax, keep_patterns=config.keep_fp32)
    converted = convert_fp16(source.model, plan, fp16_io=config.fp16_io)
    seconds["convert"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    log.info(f"checking FP16 against FP32 on the same {scan.samples} samples")
    check = evaluate(
        [("fp32", "fp32", RecordedOutputs(scan.outputs, source.spec)), ("fp16", "fp16", converted)],
        sample.batches(),
        source.spec,
        source=sample.description,
        progress=phase(progress, "checking", scan.samples),
    )
    seconds["check"] = time.perf_counter() - t0
    rate = scan.samples / max(seconds["convert"] + seconds["check"], 1e-9)
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
    accuracy = None
    eval_notes: list[str] = []
    t0 = time.perf_counter()
    eval_source = evaluation_data(source, data, eval_data, eval_notes)
    if eval_samples is None and eval_source is None and source.builtin is None:
        accuracy = check  # random feeds again would say what the check said: it is the report
        eval_notes = ["evaluated by the check (random feeds, no labels); --eval-data for held-out data"]
    elif eval_samples is None or eval_samples > 0:
        variants = [("fp32", "fp32", source.runnable), ("fp16", "fp16", converted)]
        accuracy = evaluation(source, eval_source, eval_samples, variants, progress=progress)
    seconds["evaluate"] = time.perf_counter() - t0
    kept = plan.by_reason()
    manifest = derived_manifest(
        source,
        Precision.FP16,
        "fp16",
        {
            "fp16_io": config.fp16_io,
            "kept_fp32": kept,
            "fp32_values": plan.values,
            "keep_patterns": list(config.keep_fp32),
            "data": sample.description,
            "data_sha256": sample.fingerprint(),
            "samples": scan.samples,
        },
    )
    manifest.spec = spec_for_graph(source.spec, converted)  # float16 inputs with --fp16-io
    manifest.validation = Validation(fp16_check=check.to_dict(), accuracy=_report(accuracy))
    if warnings:
        manifest.validation.extra["warnings"] = warnings
    written = write_onnx(converted, output, manifest)
    notes = [f"kept in FP32 ({len(nodes)} nodes): {reason}" for reason, nodes in kept.items()]
    notes += [f"--keep-fp32 {p!r} matched no op type or node name" for p in plan.unmatched]
    notes += eval_notes
    notes += accuracy.warnings() if accuracy is not None else []
    notes += warnings
    notes.append(f"scan, conversion and check: {scan.samples} samples, {rate:.3g} samples/s")
    return Fp16Result(written.path, accuracy, notes, seconds, written, kept_fp32=kept, check=check)


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
    tensors = quantized_tensors(source.model, layout=config.layout)
    histograms = config.method != CalibrationMethod.MINMAX  # min/max need no histogram
    stats, seen = collect_stats(
        source.model, feeds_of(calib, coverage), tensors=tensors, progress=tick, histograms=histograms
    )
    amax = choose_ranges(source.model, stats, config.method, config.percentile)
    seconds["calibrate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    quantized = insert_qdq(source.model, amax, layout=config.layout)
    costs: list[BranchCost] = []
    kept: list[str] = []
    notes = [f"skipped {node}: {why}" for node, why in quantized.skipped.items()]
    if isinstance(calib, SpecFeeds):
        notes.append(RANDOM_DATA_NOTE)
    if config.samples is not None and seen < config.samples:
        notes.append(f"calibrated on {seen} samples: the data holds fewer than --samples {config.samples}")
    if seen < RECOMMENDED_SAMPLES and not isinstance(calib, SpecFeeds):
        notes.append(f"{seen} calibration samples; TensorRT recommends about {RECOMMENDED_SAMPLES}")
    if config.method != "percentile" and config.percentile != DEFAULT_PERCENTILE:
        notes.append(f"--percentile applies to --method percentile only; ignored with {config.method}")
    if eval_samples == 0 and eval_data is not None:
        notes.append("--eval-data ignored: --eval-samples 0 asks for no evaluation")
    accuracy = None
    warnings: list[str] = []
    if eval_samples != 0:
        eval_data = evaluation_data(source, data, eval_data, notes)
        quantized, accuracy, costs, kept = _evaluate_int8(
            source, amax, quantized, config, eval_data, eval_samples, progress
        )
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
                "--max-accuracy-drop measured as top-1 disagreement with FP32: the evaluation data "
                "has no labels"
            )
        budget_kept = [n for n, why in quantized.skipped.items() if why == BUDGET_REASON]
        if kept:
            notes.append(
                f"kept in FP32 for --max-accuracy-drop: branch(es) {', '.join(kept)} "
                f"({len(budget_kept)} node(s) of them stay FP32, the rest is INT8 again)"
            )
    seconds["evaluate"] = time.perf_counter() - t0
    notes.append(_rate("calibration", seen, seconds["calibrate"]))
    if accuracy is not None:
        notes.append(_rate("evaluation", accuracy.samples, seconds["evaluate"]))
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
    manifest.validation = Validation(sensitivity=[asdict(c) for c in costs], accuracy=_report(accuracy))
    if warnings:
        manifest.validation.extra["warnings"] = warnings
    written = write_onnx(quantized.model, output, manifest, companions={cache_name: cache_text})
    notes.insert(0, f"shape coverage: {coverage_summary(coverage)}")
    cache = written.path.parent / cache_name
    return CalibrationResult(
        written.path, accuracy, notes, seconds, written, samples=seen, cache=cache, sensitivity=costs
    )


def _evaluate_int8(
    source: SourceModel,
    amax: dict[str, float],
    quantized: QdqResult,
    config: CalibrationConfig,
    eval_data: Any,
    eval_samples: int | None,
    progress: Progress,
) -> tuple[QdqResult, AccuracyReport, list[BranchCost], list[str]]:
    """The FP32 vs INT8 report, the accuracy budget, and sensitivity per branch when asked for (or
    when the data has labels: without them a branch's cost is only its top-1 disagreement)."""
    eval_source = open_data(
        eval_data,
        source,
        split="evaluation",
        samples=eval_samples,
        batch_size=EVAL_BATCH,
        budget=EVAL_BUDGET,
        purpose="evaluating on",
    )
    total = getattr(eval_source, "samples", None) or eval_samples
    costs: list[BranchCost] = []
    kept: list[str] = []
    if config.sensitivity or config.max_accuracy_drop is not None:
        costs = _sensitivity(source, amax, eval_source, total, progress)
    if config.max_accuracy_drop is not None:
        budget = fit_budget(
            source.model,
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
        quantized = insert_qdq(source.model, amax, nodes=budget.quantized_nodes, layout=config.layout)
        quantized.skipped.update({n: BUDGET_REASON for n in _fp32_nodes(source, budget)})
    # the reference as the proto calibration parsed: written with its weights as page-aligned
    # external data, which onnxruntime maps (+224 MiB for a 385 MB model, against +440 MiB
    # opening the file itself, in about the same time)
    accuracy = evaluate(
        [("fp32", "fp32", source.model), ("int8", "int8", quantized.model)],
        eval_source.batches(),
        source.spec,
        source=eval_source.description,
        progress=phase(progress, "evaluating", total),
    )
    if config.sensitivity is None and accuracy.labelled and not costs:
        costs = _sensitivity(source, amax, eval_source, total, progress)
    return quantized, accuracy, costs, kept


def _sensitivity(
    source: SourceModel, amax: dict[str, float], eval_source: Any, total: int | None, progress: Progress
) -> list[BranchCost]:
    log.info("measuring per-branch sensitivity (--no-sensitivity to skip)")
    costs, _ = branch_costs(
        source.model,
        amax,
        source.spec,
        eval_source.batches,
        source=eval_source.description,
        progress=phase(progress, "sensitivity", total),
        reference=source.model,  # as the evaluation above: mapped by onnxruntime
    )
    return costs


def _rate(what: str, samples: int, seconds: float) -> str:
    """``evaluation: 32 samples in 1.2 s, 27 samples/s`` for a stage's summary."""
    return f"{what}: {samples} samples in {seconds:.1f} s, {samples / max(seconds, 1e-9):.3g} samples/s"


def _fp32_nodes(source: SourceModel, budget: BudgetResult) -> list[str]:
    """Quantizable nodes the budget left in FP32."""
    chosen = set(budget.quantized_nodes)
    return [n.name for n in quantizable_nodes(source.model) if n.name not in chosen]


def accuracy(
    models: Sequence[str | Path | LoadedArtifact],
    *,
    data: Any = None,
    samples: int | None = None,
    spec: ModelSpec | str | Path | None = None,
    progress: Progress = no_progress,
    device: str = "cpu",
    reference_device: str | None = None,
) -> AccuracyReport:
    """Compare artifacts (the first, an ONNX file, is the reference) on one evaluation source
    (``samples`` None: 500 of real data, 32 random feeds at the opt shape).

    The others may be ONNX files or TensorRT engines (run on the GPU by the runtime); each is
    loaded once (a LoadedArtifact from an earlier stage is not read again).

    ``device``: where the ONNX variants run: ``cpu`` (onnxruntime, the graph as written) or
    ``cuda`` / ``cuda:N`` (the runtime's ``Session`` on onnxruntime's CUDA provider, as they
    deploy; engines on that GPU). ``reference_device``: the reference's (default: ``device``)."""
    if not models:
        raise MmexportError("accuracy needs at least one model")
    device = check_device(device)
    reference_device = check_device(reference_device or device, "reference_device")
    reference = load_source_model(models[0], require=None, spec=spec)
    loaded: list[tuple[Path, Manifest, onnx.ModelProto | Path]] = [
        (reference.path, reference.manifest, reference.runnable)
    ]
    loaded += [_load_variant(load_artifact(model), spec) for model in models[1:]]
    for path, manifest, _ in loaded[1:]:
        if not same_model(manifest.spec, reference.spec):
            raise MmexportError(
                f"{path} has a different spec than {reference.path}; compare variants of one model"
            )
    engines = [path.suffix in ENGINE_SUFFIXES for path, _, _ in loaded]
    on_gpu = [reference_device != "cpu"] + [device != "cpu"] * (len(loaded) - 1)
    if any(gpu and not engine for gpu, engine in zip(on_gpu, engines, strict=True)):
        require_cuda_provider()  # before the data is read: one error line, nothing run
    names = [path.name for path, _, _ in loaded]
    if len(set(names)) < len(names):  # a/model.onnx and b/model.onnx: tell them apart
        names = [str(path) for path, _, _ in loaded]
    devices = [reference_device] + [device] * (len(loaded) - 1)
    variants = [
        (n, m.precision, model if d == "cpu" else OnDevice(model, d))
        for n, (_, m, model), d in zip(names, loaded, devices, strict=True)
    ]
    budget = Budget(real=DEFAULT_EVAL_SAMPLES, option="--samples")
    return evaluation(reference, data, samples, variants, progress=progress, budget=budget)


def require_cuda_provider() -> None:
    """onnxruntime's CUDA provider must be there: the runtime's own refusal (``BackendError``,
    one line naming what this onnxruntime has and what to install)."""
    from mmexport.runtime.backends.onnxrt.loader import PROVIDERS, import_onnxruntime, require_provider

    require_provider(import_onnxruntime(), PROVIDERS["cuda"])


def _load_variant(
    artifact: LoadedArtifact, spec: ModelSpec | str | Path | None
) -> tuple[Path, Manifest, onnx.ModelProto | Path]:
    """An ONNX artifact (parsed) or a TensorRT engine (left to the runtime), with its manifest."""
    if artifact.path.suffix not in ENGINE_SUFFIXES:
        source = load_source_model(artifact, require=None, spec=spec)
        return source.path, source.manifest, source.runnable
    if artifact.manifest is None:
        raise ArtifactError(str(artifact.path), "is not an engine with its manifest (model.engine.json)")
    return artifact.path, artifact.manifest, artifact.path
