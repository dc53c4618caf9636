"""The main job: export, FP16, INT8, (TensorRT engine), accuracy and benchmarks of one model.

Each stage is an existing library call (``to_onnx``, ``to_fp16``, ``calibrate``, ``accuracy``,
``benchmark``); this module only chains them on one report folder, times them and gathers the
notes a reader needs to trust the figures. Writing the report is ``pipeline.report``'s job.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy, onnx and onnxruntime load only when the pipeline runs
    from mmexport.bench import BenchReport
    from mmexport.core.artifact import LoadedArtifact
    from mmexport.core.spec import ModelSpec
    from mmexport.precision.accuracy import AccuracyReport

from mmexport.core.progress import Progress, nested, no_progress
from mmexport.pipeline.config import (
    FP16_FILE,
    INT8_FILE,
    MODEL_FILE,
    REPORT_FILES,
    STAGES,
    PipelineConfig,
)

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    """Everything the report shows: files, the accuracy and bench reports, notes and timings."""

    folder: Path
    model: str
    builtin: str | None
    variants: list[Path]
    accuracy: AccuracyReport
    bench: BenchReport
    engine: dict[str, Any]
    calibration: dict[str, Any]
    notes: dict[str, list[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    gates: dict[str, float | None] = field(default_factory=dict)  # the recommendation's (config.gates())


def run_pipeline(config: PipelineConfig, *, progress: Progress = no_progress) -> PipelineResult:
    """Run every stage into ``config.output``; any stage's MmexportError stops the job."""
    from mmexport.core.artifact import load_artifact
    from mmexport.export import to_onnx
    from mmexport.pipeline.preflight import check_data
    from mmexport.precision.stages import CalibrationConfig, Fp16Config, accuracy, calibrate, to_fp16

    check_data(config)  # a bad --data fails now, not after the export
    folder = prepare_folder(config.output)
    seconds: dict[str, float] = {}
    notes: dict[str, list[str]] = {stage: [] for stage in STAGES}
    paths = [folder / MODEL_FILE, folder / FP16_FILE, folder / INT8_FILE]

    with _stage("export", seconds):
        exported = to_onnx(config.model, paths[0], spec=config.spec)
    source = load_artifact(exported.artifact or paths[0])  # parsed and hashed once, for every stage
    notes["export"] += exported.notes
    notes["engine"] += tensorrt_check(source, exported.manifest.spec, config.target)
    builtin = exported.manifest.source.builtin is True
    if config.data is None and not builtin:
        warning = (
            "no --data: FP16 scan and INT8 calibration use random feeds from the spec; give real samples"
        )
        notes["int8"].append(warning)
        log.info(f"warning: {warning}")
    with _stage("fp16", seconds):
        fp16 = to_fp16(
            source,
            paths[1],
            config=Fp16Config(samples=min(config.samples, Fp16Config().samples)),
            data=config.data,
            eval_samples=0,  # the accuracy stage evaluates every variant once
        )
    notes["fp16"] += fp16.notes
    calib_config = CalibrationConfig(method=config.method, samples=config.samples, sensitivity=False)
    with _stage("int8", seconds):
        int8 = calibrate(
            source,
            paths[2],
            data=config.data,
            config=calib_config,
            eval_samples=0,  # the accuracy stage evaluates every variant once
            progress=progress,
        )
    notes["int8"] += _summarize_skipped(int8.notes)
    variants = [load_artifact(r.artifact or r.path) for r in (fp16, int8)]
    with _stage("engine", seconds):
        engine = build_engines(variants, config.target)
    notes["engine"].append(engine["reason"])
    if not engine["built"]:
        log.info(f"warning: {engine['reason']}")
    engines = [Path(p) for p in engine["engines"]]
    with _stage("accuracy", seconds):  # engines too: the runtime runs them on the GPU
        report = accuracy([source, *variants, *engines], data=config.eval_data, samples=config.eval_samples)
    notes["accuracy"] += [f"warning: {w}" for w in report.warnings()]
    with _stage("bench", seconds):
        bench = run_benchmarks([source, *variants, *engines], exported.manifest.spec, config)
    notes["bench"] += [f"warning: {w}" for w in bench.warnings]
    calibration = {
        "method": config.method,
        "samples": int8.samples,
        "cache": int8.cache.name if int8.cache else None,
    }
    seconds["total"] = sum(seconds.values())
    name = str(exported.manifest.source.model or config.model)
    return PipelineResult(
        folder,
        name,
        name if builtin else None,
        paths,
        report,
        bench,
        engine,
        calibration,
        notes,
        seconds,
        config.gates(),
    )


def tensorrt_check(model: Path | LoadedArtifact, spec: ModelSpec, target: str) -> list[str]:
    """``mmexport check`` for the target before the expensive stages: errors stop the job
    (TensorRT's parser would refuse the graph), warnings become notes."""
    from mmexport.core.artifact import LoadedArtifact
    from mmexport.trt.check import check_onnx
    from mmexport.trt.targets import get_target

    graph = model.graph.proto if isinstance(model, LoadedArtifact) else model  # weights left in the file
    report = check_onnx(graph, get_target(target), spec=spec)
    for finding in report.errors:
        log.info(f"  {finding.to_text()}")
    report.raise_for_errors()
    notes = [f"TensorRT check: {report.summary()}"]
    notes += [f.to_text() for f in report.warnings]
    return notes


def prepare_folder(folder: Path) -> Path:
    """Create the report folder and remove a previous run's report files, so that a failed run
    never leaves a report.md describing models it has replaced."""
    if folder.exists() and not folder.is_dir():
        from mmexport.core.errors import ArtifactError

        raise ArtifactError(str(folder), "is a file; the pipeline writes a folder", hint="e.g. -o report/")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in REPORT_FILES:
            (folder / name).unlink(missing_ok=True)
    except OSError as e:
        from mmexport.core.errors import ArtifactError

        raise ArtifactError(str(folder), f"cannot write the report here: {e.strerror}") from e
    return folder


def build_engines(models: Sequence[Path | LoadedArtifact], target: str) -> dict[str, Any]:
    """TensorRT engines of the FP16 and INT8 ONNX files where TensorRT is installed; otherwise, or
    when a build fails, why not (the ONNX variants are still measured and reported)."""
    if importlib.util.find_spec("tensorrt") is None:
        reason = (
            "TensorRT engine build skipped: TensorRT is not installed (pip install 'mmexport[trt]' on a "
            f"machine with an NVIDIA GPU); on the device: mmexport build model.int8.onnx --target {target}"
        )
        return {"built": False, "tensorrt_installed": False, "engines": [], "reason": reason}
    from mmexport.core.artifact import LoadedArtifact
    from mmexport.core.errors import MmexportError
    from mmexport.trt.build_options import BuildOptions
    from mmexport.trt.build_stage import build_engine
    from mmexport.trt.targets import get_target

    engines: list[str] = []
    try:
        for model in models:
            path = model.path if isinstance(model, LoadedArtifact) else model
            output = path.with_name(f"{path.stem}.engine")
            build_engine(model, output, BuildOptions(target=get_target(target)))
            engines.append(str(output))
    except MmexportError as e:
        reason = f"TensorRT engine build failed ({e}); the ONNX variants are reported without engines"
        return {"built": False, "tensorrt_installed": True, "engines": [], "reason": reason}
    names = ", ".join(Path(e).name for e in engines)
    reason = f"built TensorRT engines for target {target}: {names}"
    return {"built": True, "tensorrt_installed": True, "engines": engines, "reason": reason}


def bench_batches(spec: ModelSpec) -> list[int]:
    """Batch 1 and the spec's opt batch (when different); none when the spec has no batch dim."""
    from mmexport.bench.cases import batch_dim

    dim = batch_dim(spec)
    if dim is None:
        return []
    opt = spec.point("opt")[dim]
    return [1] if opt == 1 else [1, opt]


def run_benchmarks(
    models: Sequence[Path | LoadedArtifact], spec: ModelSpec, config: PipelineConfig
) -> BenchReport:
    """Every variant at the opt shape, batch 1 and the opt batch, measured interleaved (loaded
    artifacts open without their manifests being read again)."""
    from mmexport.bench import BenchConfig, BenchTarget, benchmark, build_cases
    from mmexport.core.artifact import LoadedArtifact

    targets = []
    for model in models:
        path = model.path if isinstance(model, LoadedArtifact) else model
        device = "cuda" if path.suffix == ".engine" else "cpu"
        options = {"cuda_graph": True} if config.cuda_graph and device == "cuda" else None
        targets.append(BenchTarget(path=model, label=path.name, device=device, options=options))
    bench_config = BenchConfig(warmup_s=config.warmup_s, duration_s=config.duration_s)
    return benchmark(targets, build_cases(batches=bench_batches(spec)), bench_config)


def _summarize_skipped(notes: list[str]) -> list[str]:
    """Calibration lists every node left unquantized; the report keeps a count and a few names."""
    skipped = [n for n in notes if n.startswith("skipped ")]
    kept = [n for n in notes if not n.startswith("skipped ")]
    if len(skipped) <= 3:
        return kept + skipped
    names = ", ".join(n.split(":", 1)[0].removeprefix("skipped ") for n in skipped[:3])
    return [*kept, f"{len(skipped)} nodes left unquantized (INT8 rules), e.g. {names}"]


@contextmanager
def _stage(name: str, seconds: dict[str, float]) -> Iterator[None]:
    """Announce a stage (its steps' notes nested under it) and record its wall time."""
    log.info(f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name}")
    t0 = time.perf_counter()
    with nested():
        yield
    seconds[name] = round(time.perf_counter() - t0, 3)
