"""What the precision stages share: the source model loaded once, choosing data, shape coverage,
evaluation, and writing a variant (which comes back loaded, for the next stage)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from mmexport.core.artifact import LoadedArtifact, load_artifact
from mmexport.core.errors import ArtifactError, PrecisionError
from mmexport.core.files import output_folder, sha256_file, staging_dir
from mmexport.core.inspection import model_precision
from mmexport.core.manifest import ArtifactKind, Manifest, Precision, Producer, Source, publish_artifact
from mmexport.core.onnx_file import save_model_streamed
from mmexport.core.onnx_mapped import MappedModel
from mmexport.core.progress import Progress, no_progress
from mmexport.core.spec import ModelSpec
from mmexport.data.feeds import ShapeCoverage
from mmexport.precision.accuracy import AccuracyReport, evaluate

log = logging.getLogger(__name__)

RANDOM_SAMPLES = 32  # random feeds have no labels and one distribution: tens of samples say as much as 500


@dataclass(frozen=True)
class Budget:
    """How many samples a step takes when the user does not say: ``real`` of real data, ``random``
    of random feeds from the spec; ``option`` is the flag that changes it (printed with the default)."""

    real: int
    option: str
    random: int = RANDOM_SAMPLES


@dataclass
class SourceModel:
    """An ONNX artifact, loaded once: its proto, its manifest (or one from ``--spec``), its sha256."""

    artifact: LoadedArtifact
    manifest: Manifest

    @property
    def path(self) -> Path:
        return self.artifact.path

    @property
    def model(self) -> onnx.ModelProto:
        return self.artifact.model

    @property
    def graph(self) -> MappedModel:
        """The model with its weights left in the file (what runs on onnxruntime and graph passes use)."""
        return self.artifact.graph

    @property
    def sha256(self) -> str:
        return self.artifact.sha256

    @property
    def spec(self) -> ModelSpec:
        return self.manifest.spec

    @property
    def builtin(self) -> str | None:
        """The built-in model's name when this artifact was exported from one."""
        return self.manifest.source.builtin_name


def load_source_model(
    path: str | Path | LoadedArtifact,
    *,
    require: str | None = Precision.FP32,
    spec: ModelSpec | str | Path | None = None,
) -> SourceModel:
    """Load ``path`` (once: a LoadedArtifact is used as is) and its manifest; refuse anything but
    ``require`` precision, or a file that is not what its manifest records.

    An ONNX from elsewhere (no mmexport manifest) needs ``spec``: its inputs must be the graph's.
    """
    artifact = load_artifact(path)
    if artifact.manifest is None and spec is None:
        artifact.require_manifest("export it with mmexport to-onnx, or give its spec with --spec")
    artifact.verify()  # hashed anyway for the derived manifests: a modified source is refused
    model = artifact.graph.proto  # the graph is what is checked; weights are parsed where needed
    manifest = artifact.manifest or _foreign_manifest(artifact, spec)
    found = model_precision(model)
    if require is not None and found != require:
        raise ArtifactError(
            str(artifact.path),
            f"is {found}; this step needs the {require} model",
            hint="pass the to-onnx output",
        )
    return SourceModel(artifact, manifest)


def _foreign_manifest(artifact: LoadedArtifact, spec: ModelSpec | str | Path | None) -> Manifest:
    """A manifest for an ONNX that mmexport did not export, from the user's spec."""
    if not isinstance(spec, ModelSpec):
        spec = ModelSpec.from_file(spec)  # type: ignore[arg-type]
    model, path = artifact.graph.proto, artifact.path
    constants = {init.name for init in model.graph.initializer}
    graph_inputs = [i.name for i in model.graph.input if i.name not in constants]
    if sorted(graph_inputs) != sorted(spec.input_names):
        raise ArtifactError(
            str(path),
            f"has inputs {', '.join(graph_inputs)} but the spec declares {', '.join(spec.input_names)}",
        )
    return Manifest(
        kind=ArtifactKind.ONNX,
        artifact=path.name,
        sha256=artifact.sha256,
        spec=spec,
        precision=model_precision(model).removesuffix("-qdq"),
        source=Source(onnx=path.name, manifest="built from --spec (not exported by mmexport)"),
    )


@dataclass(frozen=True)
class FeedBatch:
    feed: dict[str, np.ndarray]
    labels: np.ndarray | None = None


class SpecFeeds:
    """Random valid feeds from the spec, all at the opt point (the shapes a deployment mostly
    sees: statistics and agreement there are what matter; the corners are the parity gate's job),
    until ``samples`` rows. ``seed`` keeps calibration and evaluation feeds apart."""

    def __init__(self, spec: ModelSpec, samples: int | None = None, seed: int = 0) -> None:
        self.spec = spec
        self.points = [spec.example_point()]
        self.samples = samples
        self.seed = seed
        count = "" if samples is None else f"{samples} samples "
        self.description = f"random feeds from the spec ({count}at the opt shape, seed {seed})"

    def batches(self) -> Iterator[FeedBatch]:
        rows, i = 0, 0
        while True:
            point = self.points[i % len(self.points)]
            feed = self.spec.sample_feed(point, seed=self.seed * 100_003 + i)
            if self.samples is not None:  # the last batch is cut, never below the batch dim's min
                keep = max(self.samples - rows, self._min_batch())
                feed = {k: v[:keep] for k, v in feed.items()}
            yield FeedBatch(feed)
            rows += len(next(iter(feed.values())))
            i += 1
            if (self.samples is None and i == len(self.points)) or (
                self.samples is not None and rows >= self.samples
            ):
                return

    def _min_batch(self) -> int:
        first = self.spec.inputs[0].shape[0] if self.spec.inputs and self.spec.inputs[0].shape else 1
        return self.spec.dims[first].min if isinstance(first, str) else int(first)

    def fingerprint(self) -> str:
        text = repr((self.spec.to_dict(), self.points, self.samples, self.seed))
        return hashlib.sha256(text.encode()).hexdigest()


def open_data(
    data: Any,
    model: SourceModel,
    *,
    split: str,
    samples: int | None,
    batch_size: int,
    budget: Budget | None = None,
    purpose: str = "",
) -> Any:
    """The data source for ``data`` ("synthetic", a folder, .npz, make_feeds, an iterable), or
    random feeds from the spec when ``data`` is None and the model is not a built-in.

    ``samples=None`` takes ``budget``'s default for that kind of data. With ``purpose`` (``"evaluating
    on"``) one note says what is used and, for a default, the option that changes it."""
    random = data is None and model.builtin is None
    budget = budget or Budget(real=RANDOM_SAMPLES, option="--samples")
    count = samples if samples is not None else budget.random if random else budget.real
    source: Any
    if random:
        source = SpecFeeds(model.spec, count, seed=0 if split == "calibration" else 1)
    else:
        from mmexport.data.sources import open_source

        source = open_source(
            "synthetic" if data is None else data,
            model.spec,
            builtin=model.builtin,
            split=split,
            samples=count,
            batch_size=batch_size,
        )
    if purpose:
        what = f"{count} random samples at the opt shape" if random else source.description
        hint = f" ({budget.option} N to change)" if samples is None else ""
        log.info(f"{purpose} {what}{hint}")
    return source


def coverage_summary(coverage: ShapeCoverage) -> str:
    """``batch 8..8, height 48..128`` for progress notes."""
    seen = coverage.as_dict()
    return ", ".join(f"{n} {r['min']}..{r['max']}" for n, r in seen.items()) or "no dynamic dims"


def feeds_of(source: Any, coverage: ShapeCoverage | None = None) -> Iterator[dict[str, np.ndarray]]:
    """The feeds of a source's batches, recording shape coverage on the way (every source from
    ``open_source`` already refuses to be empty)."""
    for batch in source.batches():
        if coverage is not None:
            coverage.add(batch.feed)
        yield batch.feed


def check_output(source: SourceModel, output: str | Path) -> Path:
    """Refuse, before any work, an output that is not an .onnx file or that is the input itself."""
    out = Path(output)
    if out.suffix != ".onnx":
        raise ArtifactError(str(out), "must end in .onnx", hint=f"e.g. -o {out.with_suffix('.onnx').name}")
    if out.resolve() == source.path.resolve():
        raise ArtifactError(str(out), "is the input model; writing it would replace the FP32 source")
    return out


class StagedOnnx:
    """A variant's output taken for a stage (its folder, its lock, a staging folder beside it):
    ``write`` puts the variant at ``path`` in the staging folder, where the stage checks it
    (onnxruntime reads the file; the proto it was written from can go), then ``publish`` moves it
    and its manifest into place. Leaving the ``staged_output`` block any other way removes it."""

    def __init__(self, output: Path, stage: Path) -> None:
        self.output = output
        self.path = stage / output.name

    def write(self, model: onnx.ModelProto) -> None:
        save_model_streamed(model, self.path)  # onnx.save's bytes, without serializing it whole

    def publish(self, manifest: Manifest, *, companions: Mapping[str, str] | None = None) -> LoadedArtifact:
        """Move the variant (and text ``companions`` beside it) into place, then the manifest;
        the written artifact comes back loaded (its hash is the one just made)."""
        for name, text in (companions or {}).items():
            (self.path.parent / name).write_text(text, encoding="utf-8")
        manifest.sha256 = sha256_file(self.path)
        manifest.artifact = self.output.name
        publish_artifact(self.path, self.output, manifest, companions=tuple(companions or ()))
        return load_artifact(self.output, manifest=manifest, sha256=manifest.sha256)


@contextmanager
def staged_output(output: str | Path) -> Iterator[StagedOnnx]:
    """``output`` taken before a stage's work, as ``to-onnx`` takes its own: its folder made,
    its lock held and a staging folder beside it, so that an output that cannot be written (or
    that another run is writing) is refused before any work, and nothing is left on failure."""
    with output_folder(output) as out, staging_dir(out) as stage:
        yield StagedOnnx(out, stage)


def write_onnx(
    model: onnx.ModelProto,
    output: str | Path,
    manifest: Manifest,
    *,
    companions: Mapping[str, str] | None = None,
) -> LoadedArtifact:
    """Stage ``model`` (and text ``companions`` beside it), move them into place, then the manifest;
    the written artifact comes back loaded (its proto and hash are the ones just made)."""
    with staged_output(output) as staged:
        staged.write(model)
        written = staged.publish(manifest, companions=companions)
    return load_artifact(written.path, manifest=manifest, sha256=manifest.sha256, model=model)


def derived_manifest(source: SourceModel, precision: str, stage: str, details: dict[str, Any]) -> Manifest:
    """A manifest for a variant of ``source`` (sha256 and artifact are filled in when written)."""
    return Manifest(
        kind=ArtifactKind.ONNX,
        artifact="",
        sha256="",
        spec=source.spec,
        precision=precision,
        source=source.manifest.source.derived(source.path.name, source.sha256),
        producer=Producer.current(stage, **details),
    )


EVAL_ON_CALIBRATION_NOTE = (
    "evaluated on the --data samples (no --eval-data): figures on held-out data can be lower"
)


def evaluation_data(source: SourceModel, data: Any, eval_data: Any, notes: list[str]) -> Any:
    """What to evaluate on: --eval-data; else the built-in task's held-out split; else the user's
    --data (real samples beat random feeds), saying so."""
    if eval_data is not None or source.builtin is not None or data is None:
        return eval_data
    notes.append(EVAL_ON_CALIBRATION_NOTE)
    return data


EVAL_BUDGET = Budget(real=500, option="--eval-samples")
EVAL_BATCH = 50


def evaluation(
    source: SourceModel,
    eval_data: Any,
    samples: int | None,
    variants: Sequence[tuple[str, str, Any]],
    *,
    progress: Progress = no_progress,
    budget: Budget = EVAL_BUDGET,
) -> AccuracyReport:
    """Compare ``variants`` on ``samples`` evaluation samples of ``eval_data`` (None: the budget's
    default for that data, said in a note)."""
    data, total = open_evaluation(source, eval_data, samples, budget)
    return evaluate(
        variants,
        data.batches(),
        source.spec,
        source=data.description,
        progress=phase(progress, "evaluating", total),
    )


def open_evaluation(
    source: SourceModel, eval_data: Any, samples: int | None, budget: Budget = EVAL_BUDGET
) -> tuple[Any, int | None]:
    """The evaluation source (``samples`` None: the budget's default for that data, said in a note)
    and the number of samples it will give, for progress."""
    data = open_data(
        eval_data,
        source,
        split="evaluation",
        samples=samples,
        batch_size=EVAL_BATCH,
        budget=budget,
        purpose="evaluating on",
    )
    return data, getattr(data, "samples", None) or samples


def phase(progress: Progress, label: str, total: int | None) -> Progress:
    """``progress`` for one loop of a stage: a printer that shows phases (``phase(label)``, as the
    CLI's counter has) starts a new line named ``label``; every call carries ``total``."""
    start = getattr(progress, "phase", None)
    if callable(start):
        start(label)

    def tick(done: int, _total: int | None = None, /) -> None:
        progress(done, total)

    return tick


POOR_COSINE = 0.99  # below this, a variant's agreement with FP32 is worth a warning


def check_agreement(
    report: AccuracyReport,
    what: str,
    *,
    min_cosine: float | None,
    max_abs_diff: float | None,
    hint: str,
) -> list[str]:
    """Refuse (``PrecisionError`` with the table; the caller has written nothing) a variant whose
    agreement with the reference misses a gate; without a failing gate, warnings when the worst
    sample's cosine is below ``POOR_COSINE``."""
    variant = report.variants[1]
    worst = variant.worst_cosine()
    largest = max((o.max_abs for o in variant.outputs), default=0.0)
    failed = []
    if min_cosine is not None and worst < min_cosine:
        failed.append(f"min cosine similarity {worst:.6f} < {min_cosine:g}")
    if max_abs_diff is not None and largest > max_abs_diff:
        failed.append(f"max abs diff {largest:.4g} > {max_abs_diff:g}")
    if failed:
        raise PrecisionError(
            f"{what} model disagrees with FP32: {'; '.join(failed)} on {report.source}; nothing written",
            report=report,
            hint=hint,
        )
    if worst < POOR_COSINE:
        return [
            f"{what} agrees poorly with FP32: min cosine similarity {worst:.4f} < {POOR_COSINE} on "
            f"{report.source} (--min-cosine / --max-abs-diff refuse such a model)"
        ]
    return []
