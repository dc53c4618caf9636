"""FP32 vs FP16 vs INT8 on one evaluation source: agreement per output and task accuracy.

Everything is accumulated batch by batch (no outputs are kept), so any number of samples fits.
Relative error is reported against the reference output's range (max |diff| / max |reference|),
which stays meaningful for outputs that cross zero, unlike an elementwise ratio.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx

from mmexport.core.progress import Progress
from mmexport.core.spec import ModelSpec
from mmexport.precision.collect import cpu_session


class LabelledBatch(Protocol):
    feed: Mapping[str, np.ndarray]
    labels: np.ndarray | None


@dataclass
class OutputAgreement:
    """How one output of a variant agrees with the reference's."""

    output: str
    max_abs: float
    max_rel: float  # max |diff| / max |reference|
    cosine_mean: float  # per sample, averaged
    cosine_min: float
    top1: float | None  # share of samples with the same argmax (classifier outputs)


@dataclass
class VariantAccuracy:
    name: str
    precision: str
    accuracy: float | None  # task accuracy when the data has labels
    outputs: list[OutputAgreement] = field(default_factory=list)  # empty for the reference

    def worst_cosine(self) -> float:
        return min((o.cosine_min for o in self.outputs), default=1.0)

    def agreement(self) -> float | None:
        values = [o.top1 for o in self.outputs if o.top1 is not None]
        return min(values) if values else None


@dataclass
class AccuracyReport:
    source: str
    samples: int
    labelled: bool
    variants: list[VariantAccuracy]
    reference_nonfinite: int = 0  # samples where the reference itself gave NaN or inf
    reference_classes: int | None = None  # distinct top-1 classes the reference predicted

    def warnings(self) -> list[str]:
        """What makes these figures say little about the model."""
        out = []
        if self.reference_classes == 1 and self.samples > 1:
            out.append(
                f"the reference predicts the same class for all {self.samples} samples: agreement and "
                "accuracy figures say little (untrained weights, or data unlike what the model expects?)"
            )
        return out

    @property
    def reference(self) -> VariantAccuracy:
        return self.variants[0]

    def drop(self, variant: VariantAccuracy) -> float | None:
        """Points lost against the reference: task accuracy if labelled, else top-1 disagreement."""
        if self.labelled and variant.accuracy is not None and self.reference.accuracy is not None:
            return 100.0 * (self.reference.accuracy - variant.accuracy)
        agreement = variant.agreement()
        return None if agreement is None else 100.0 * (1.0 - agreement)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "samples": self.samples,
            "labelled": self.labelled,
            "reference": self.reference.name,
            "reference_nonfinite_samples": self.reference_nonfinite,
            "reference_classes": self.reference_classes,
            "warnings": self.warnings(),
            "variants": [{**asdict(v), "drop_points": self.drop(v)} for v in self.variants],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=True)

    def to_markdown(self) -> str:
        lines = [
            f"Accuracy on {self.source}: {self.samples} samples evaluated; reference: {self.reference.name}",
            "",
            "| model | precision | task accuracy | drop (points) | top-1 agreement | min cosine "
            "| max abs diff | max rel diff |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for v in self.variants:
            outputs = v.outputs
            lines.append(
                f"| {v.name} | {v.precision} | {_pct(v.accuracy)} | {_num(self.drop(v), '.2f')} "
                f"| {_pct(v.agreement())} | {_num(v.worst_cosine() if outputs else None, '.5f')} "
                f"| {_num(max((o.max_abs for o in outputs), default=None), '.3g')} "
                f"| {_num(max((o.max_rel for o in outputs), default=None), '.3g')} |"
            )
        lines += [f"\nwarning: {w}" for w in self.warnings()]
        return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


class _Accumulator:
    def __init__(self, output: str, classifier: bool) -> None:
        self.output = output
        self.classifier = classifier
        self.max_abs = 0.0
        self.ref_range = 0.0
        self.cos_sum = 0.0
        self.cos_min = math.inf
        self.agree = 0
        self.count = 0

    def update(self, actual: np.ndarray, reference: np.ndarray) -> None:
        a = actual.astype(np.float64).reshape(actual.shape[0], -1)
        r = reference.astype(np.float64).reshape(reference.shape[0], -1)
        diff = np.abs(a - r)
        self.max_abs = max(self.max_abs, float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0)))
        self.ref_range = max(self.ref_range, float(np.abs(r).max(initial=0.0)))
        norm_a, norm_r = np.linalg.norm(a, axis=1), np.linalg.norm(r, axis=1)
        norms = norm_a * norm_r
        both_zero = (norm_a == 0) & (norm_r == 0)  # identical all-zero outputs agree; one zero does not
        cosine = np.where(norms > 0, (a * r).sum(axis=1) / np.maximum(norms, 1e-300), both_zero * 1.0)
        cosine = np.nan_to_num(cosine, nan=-1.0)
        self.cos_sum += float(cosine.sum())
        self.cos_min = min(self.cos_min, float(cosine.min(initial=1.0)))
        if self.classifier:
            same = (actual.argmax(-1) == reference.argmax(-1)).reshape(actual.shape[0], -1)
            self.agree += int(same.all(axis=1).sum())
        self.count += a.shape[0]

    def result(self) -> OutputAgreement:
        return OutputAgreement(
            output=self.output,
            max_abs=self.max_abs,
            max_rel=_ratio(self.max_abs, self.ref_range),
            cosine_mean=self.cos_sum / max(self.count, 1),
            cosine_min=self.cos_min if self.count else 1.0,
            top1=self.agree / self.count if self.classifier and self.count else None,
        )


def _ratio(diff: float, scale: float) -> float:
    if scale > 0:
        return diff / scale
    return 0.0 if diff == 0 else math.inf


_ORT_FLOATS = {"tensor(float16)": np.float16, "tensor(float)": np.float32, "tensor(double)": np.float64}


def _cast_for(session: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feed in the float types the session's inputs declare (an --fp16-io model takes float16)."""
    out = dict(feed)
    for arg in session.get_inputs():
        dtype = _ORT_FLOATS.get(arg.type)
        if dtype is not None and arg.name in out and out[arg.name].dtype != dtype:
            out[arg.name] = out[arg.name].astype(dtype)
    return out


ENGINE_SUFFIXES = (".engine", ".plan")
Runner = Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]


def _runner(model: onnx.ModelProto | str | Path, outputs: list[str]) -> Runner:
    """A callable feed -> outputs: onnxruntime for ONNX, the runtime's TensorRT backend for an
    engine file (``.engine`` / ``.plan``, on the GPU; it checks the engine's manifest first)."""
    if not isinstance(model, onnx.ModelProto) and Path(model).suffix in ENGINE_SUFFIXES:
        from mmexport.runtime import Session

        engine = Session(model, device="cuda")
        floats = {i.name: np.dtype(i.dtype) for i in engine.spec.inputs if np.dtype(i.dtype).kind == "f"}

        def run_engine(feed: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
            # an engine built from an --fp16-io model takes float16, like its manifest says
            return engine.run(
                {k: v.astype(floats[k], copy=False) if k in floats else v for k, v in feed.items()}
            )

        return run_engine
    session = cpu_session(model)
    return lambda feed: dict(zip(outputs, session.run(outputs, _cast_for(session, feed)), strict=True))


def evaluate(
    models: Sequence[tuple[str, str, onnx.ModelProto | str | Path]],
    batches: Iterable[LabelledBatch],
    spec: ModelSpec,
    *,
    source: str,
    progress: Progress | None = None,
) -> AccuracyReport:
    """Run ``models`` ((name, precision, model); the first is the reference) over ``batches``.

    A model is an ONNX proto or file (onnxruntime, CPU) or a TensorRT engine file."""
    outputs = [o.name for o in spec.outputs]
    runners = [_runner(m, outputs) for _, _, m in models]
    classifier = {o.name: bool(o.labels) for o in spec.outputs}
    task_output = next((o.name for o in spec.outputs if o.labels), outputs[0])
    acc = [{o: _Accumulator(o, classifier[o]) for o in outputs} for _ in models[1:]]
    correct = [0] * len(models)
    seen = nonfinite = 0
    predicted: set[int] = set()
    labelled = True
    for batch in batches:
        feed = {k: np.asarray(v) for k, v in batch.feed.items()}
        results = [run(feed) for run in runners]
        reference = results[0]
        nonfinite += _nonfinite_samples(reference, outputs)
        if any(classifier.values()):
            predicted.update(np.asarray(reference[task_output]).argmax(-1).reshape(-1).tolist())
        for i, result in enumerate(results[1:]):
            for name in outputs:
                acc[i][name].update(np.asarray(result[name]), np.asarray(reference[name]))
        if batch.labels is None:
            labelled = False
        else:
            for i, result in enumerate(results):
                correct[i] += int((np.asarray(result[task_output]).argmax(-1) == batch.labels).sum())
        seen += int(next(iter(feed.values())).shape[0])
        if progress is not None:
            progress(seen)
    variants = []
    for i, (name, precision, _) in enumerate(models):
        variants.append(
            VariantAccuracy(
                name=name,
                precision=precision,
                accuracy=correct[i] / seen if labelled and seen else None,
                outputs=[a.result() for a in acc[i - 1].values()] if i else [],
            )
        )
    return AccuracyReport(
        source=source,
        samples=seen,
        labelled=labelled and seen > 0,
        variants=variants,
        reference_nonfinite=nonfinite,
        reference_classes=len(predicted) if any(classifier.values()) else None,
    )


def _nonfinite_samples(result: Mapping[str, np.ndarray], outputs: list[str]) -> int:
    """Samples (rows) where any output holds NaN or inf."""
    bad: np.ndarray | None = None
    for name in outputs:
        values = np.asarray(result[name])
        if not np.issubdtype(values.dtype, np.floating) or values.ndim == 0:
            continue
        rows = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
        bad = rows if bad is None else bad | rows
    return 0 if bad is None else int(bad.sum())
