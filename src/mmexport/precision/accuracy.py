"""FP32 vs FP16 vs INT8 on one evaluation source: agreement per output and task accuracy.

The models run one after another (one session open at a time); the reference's outputs and the
feeds are kept for the variants' runs, and figures are accumulated batch by batch.
Each model is a runtime ``Runner``; each batch's outputs are compared by the runtime's ``compare``.
Relative error is reported against the reference output's range (max |diff| / max |reference|),
which stays meaningful for outputs that cross zero, unlike an elementwise ratio.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnx

from mmexport.core.disk_full import DISK_FULL, disk_full_error
from mmexport.core.errors import ConfigError
from mmexport.core.onnx_file import save_with_external_data
from mmexport.core.onnx_mapped import MappedModel
from mmexport.core.progress import Progress
from mmexport.core.spec import ModelSpec
from mmexport.precision.accuracy_report import AccuracyReport, OutputAgreement, VariantAccuracy
from mmexport.runtime.backends.onnxrt.runner import OnnxModelRunner
from mmexport.runtime.compare import compare_arrays
from mmexport.runtime.runner import Runner


class LabelledBatch(Protocol):
    feed: Mapping[str, np.ndarray]
    labels: np.ndarray | None


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

    def update(self, actual: np.ndarray, reference: np.ndarray, axis: int | None = 0) -> None:
        actual, reference = samples_first(actual, axis), samples_first(reference, axis)
        c = compare_arrays(actual, reference, output=self.output, equal_nan=False)
        self.max_abs = max(self.max_abs, c.max_abs)
        self.ref_range = max(self.ref_range, c.reference_amax)
        self.cos_sum += float(c.sample_cosines.sum())
        self.cos_min = min(self.cos_min, float(c.sample_cosines.min(initial=1.0)))
        if self.classifier:
            same = (actual.argmax(-1) == reference.argmax(-1)).reshape(actual.shape[0], -1)
            self.agree += int(same.all(axis=1).sum())
        self.count += actual.shape[0]

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


ENGINE_SUFFIXES = (".engine", ".plan")


class RecordedOutputs:
    """A reference whose outputs were computed already (the FP16 scan's FP32 pass): ``run`` gives
    them back batch by batch, in the order the batches come."""

    def __init__(self, outputs: Iterable[Mapping[str, np.ndarray]], spec: ModelSpec) -> None:
        self._outputs = iter(outputs)
        self.spec = spec

    def run(self, feed: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        try:
            return next(self._outputs)
        except StopIteration:
            raise RuntimeError("more batches than recorded outputs") from None

    def __enter__(self) -> RecordedOutputs:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


DEVICES = "cpu, cuda or cuda:N"


def check_device(device: str, option: str = "device") -> str:
    """``device`` if it is ``cpu``, ``cuda`` or ``cuda:N``; else one ``ConfigError`` naming ``option``."""
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:[0-9]+)?", device):
        raise ConfigError(f"{option} must be {DEVICES}, got {device!r}", fields=(option,))
    return device


@dataclass(frozen=True)
class OnDevice:
    """A model to evaluate through the runtime's ``Session`` on ``device`` (``cuda``, ``cuda:N``):
    onnxruntime's CUDA provider for ONNX, the TensorRT backend on that GPU for an engine, as the
    model deploys (onnxruntime's graph optimizations on). ``device="cpu"`` is the plain model."""

    model: onnx.ModelProto | MappedModel | str | Path
    device: str = "cpu"


Model = onnx.ModelProto | MappedModel | str | Path | RecordedOutputs | OnDevice


@contextmanager
def model_file(model: onnx.ModelProto, outputs: Iterable[onnx.ValueInfoProto] = ()) -> Iterator[Path]:
    """``model`` (with ``outputs`` added to its graph's) saved for onnxruntime in a temporary folder,
    its weights as external data: serializing a proto of hundreds of MB into one bytes object took
    seconds and held three copies of the weights at once; this writes them tensor by tensor from
    ``model`` (which is left as it is, with no copy made), and onnxruntime maps them from the file."""
    with tempfile.TemporaryDirectory(prefix="mmexport-") as folder:
        path = Path(folder) / "model.onnx"
        try:
            save_with_external_data(model, path, extra_outputs=outputs)
        except OSError as e:
            if e.errno not in DISK_FULL:
                raise
            raise disk_full_error(
                path,
                e,
                what="the temporary copy onnxruntime reads",
                hint="free some space in the temporary folder, or set TMPDIR to one with room",
            ) from e
        yield path


@contextmanager
def graph_runner(
    model: onnx.ModelProto | MappedModel,
    *,
    outputs: Sequence[onnx.ValueInfoProto] = (),
    fetch: list[str] | None = None,
    mem_pattern: bool = True,
    fold_dequantize: bool = False,
) -> Iterator[OnnxModelRunner]:
    """``model`` on onnxruntime's CPU provider, the graph as written (``fold_dequantize``: its
    constant weights dequantized once, see ``open_model``), with ``outputs`` added to its graph's
    and ``fetch`` fetched (default: the graph's outputs). A ``MappedModel`` runs on the weights
    in its file (nothing written); a proto is written to a temporary file first."""
    with ExitStack() as stack:
        if isinstance(model, MappedModel):
            source: bytes | Path = model.with_outputs(list(outputs))
        else:
            source = stack.enter_context(model_file(model, outputs))
        mapped = model if isinstance(model, MappedModel) else None
        runner = OnnxModelRunner(
            source,
            outputs=fetch,
            optimize=False,
            mem_pattern=mem_pattern,
            fold_dequantize=fold_dequantize,
            weights_folder=mapped.folder if mapped else None,
            name=str(mapped.path) if mapped else None,
        )
        with runner:
            if mapped:
                mapped.check_unchanged()  # the weights onnxruntime read are the graph's
            yield runner
            if mapped:
                mapped.check_unchanged()  # and stayed so while it ran (a mapped file can change)


def _runner(model: Model, precision: str, outputs: list[str], stack: ExitStack) -> Runner | RecordedOutputs:
    """onnxruntime (CPU; the graph as written, INT8 weights dequantized once) for ONNX, the
    runtime's TensorRT backend for an engine file (``.engine`` / ``.plan``, on the GPU; it checks
    the engine's manifest first), and a ``Session`` on the GPU for an ``OnDevice`` model. Each
    checks feeds against what the model takes (its graph's inputs, or the artifact's spec)."""
    if isinstance(model, RecordedOutputs):
        return model
    device = "cpu"
    if isinstance(model, OnDevice):
        device = check_device(model.device)
        model = model.model
    fold = precision.startswith("int8")  # its weights dequantized once, not on every batch
    if device == "cpu" and isinstance(model, onnx.ModelProto | MappedModel):
        # each model runs the evaluation's batches once: no activation buffers planned and kept
        return stack.enter_context(
            graph_runner(model, fetch=outputs, mem_pattern=False, fold_dequantize=fold)
        )
    if isinstance(model, MappedModel):
        model = model.path
    if isinstance(model, onnx.ModelProto):
        model = stack.enter_context(model_file(model))  # written as is: the proto keeps its weights
    if Path(model).suffix in ENGINE_SUFFIXES or device != "cpu":
        from mmexport.runtime import Session

        # engines run on the GPU whatever the evaluation's device; ONNX on onnxruntime's CUDA provider
        return Session(model, device="cuda" if device == "cpu" else device)
    return OnnxModelRunner(
        Path(model), outputs=outputs, optimize=False, mem_pattern=False, fold_dequantize=fold
    )


def _cast_for(runner: Runner | RecordedOutputs, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feed in the float types the model's inputs take (an --fp16-io model takes float16)."""
    out = dict(feed)
    for spec in runner.spec.inputs:
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f" and spec.name in out and out[spec.name].dtype != dtype:
            out[spec.name] = out[spec.name].astype(dtype)
    return out


def evaluate(
    models: Sequence[tuple[str, str, Model]],
    batches: Iterable[LabelledBatch],
    spec: ModelSpec,
    *,
    source: str,
    progress: Progress | None = None,
) -> AccuracyReport:
    """Run ``models`` ((name, precision, model); the first is the reference) over ``batches``.

    A model is an ONNX proto or file (onnxruntime, CPU), a TensorRT engine file, or (as the
    reference) outputs recorded already.

    The models run one after another, each with only its own session open (and, for a proto, its
    temporary file on disk): the reference first, over ``batches`` (iterated once), keeping each
    batch's feed, labels and reference outputs; then each variant over those kept batches. What is
    kept is the evaluation's feeds and outputs (tens to hundreds of samples), far less than a second
    session over a big model (hundreds of MB: onnxruntime's CPU provider holds an FP16 model's
    weights in FP32 too)."""
    outputs = [o.name for o in spec.outputs]
    classifier = {o.name: bool(o.labels) for o in spec.outputs}
    task_output = next((o.name for o in spec.outputs if o.labels), outputs[0])
    kept: list[_Batch] = []
    correct = [0] * len(models)
    nonfinite = 0
    predicted: set[int] = set()
    labelled = True
    passes = len(models)
    with ExitStack() as stack:
        runner: Runner | RecordedOutputs = _runner(models[0][2], models[0][1], outputs, stack)
        stack.enter_context(runner)
        seen = 0
        for batch in batches:
            feed = {k: np.asarray(v) for k, v in batch.feed.items()}
            reference = dict(runner.run(_cast_for(runner, feed)))
            sizes = batch_sizes(feed)
            axes = {name: output_axis(spec, name, np.shape(reference[name]), sizes) for name in outputs}
            nonfinite += _nonfinite_samples(reference, axes)
            if any(classifier.values()):
                predicted.update(np.asarray(reference[task_output]).argmax(-1).reshape(-1).tolist())
            if batch.labels is None:
                labelled = False
            else:
                correct[0] += int((np.asarray(reference[task_output]).argmax(-1) == batch.labels).sum())
            rows = int(next(iter(feed.values())).shape[0])
            kept.append(_Batch(feed, batch.labels, reference, axes, rows))
            seen += rows
            if progress is not None:
                progress(seen // passes)  # a share of the samples the runs of all models make
    total = seen
    acc = [{o: _Accumulator(o, classifier[o]) for o in outputs} for _ in models[1:]]
    for i, (_, precision, model) in enumerate(models[1:], start=1):
        with ExitStack() as stack:
            runner = _runner(model, precision, outputs, stack)
            stack.enter_context(runner)
            for kept_batch in kept:
                result = runner.run(_cast_for(runner, kept_batch.feed))
                reference = kept_batch.reference
                for name in outputs:
                    actual = np.asarray(result[name])
                    acc[i - 1][name].update(actual, np.asarray(reference[name]), kept_batch.axes[name])
                if kept_batch.labels is not None:
                    hits = np.asarray(result[task_output]).argmax(-1) == kept_batch.labels
                    correct[i] += int(hits.sum())
                seen += kept_batch.rows
                if progress is not None:
                    progress(seen // passes)
    variants = []
    for i, (name, precision, _) in enumerate(models):
        variants.append(
            VariantAccuracy(
                name=name,
                precision=precision,
                accuracy=correct[i] / total if labelled and total else None,
                outputs=[a.result() for a in acc[i - 1].values()] if i else [],
            )
        )
    return AccuracyReport(
        source=source,
        samples=total,
        labelled=labelled and total > 0,
        variants=variants,
        reference_nonfinite=nonfinite,
        reference_classes=len(predicted) if any(classifier.values()) else None,
    )


@dataclass
class _Batch:
    """One evaluation batch as the reference saw it, kept for the variants' runs."""

    feed: dict[str, np.ndarray]
    labels: np.ndarray | None
    reference: dict[str, np.ndarray]
    axes: dict[str, int | None]
    rows: int


def batch_sizes(feed: Mapping[str, np.ndarray]) -> set[int]:
    """The feed's batch sizes: the size of axis 0 of every input (one per batch dim, e.g. the
    number of images and the number of texts of a CLIP batch)."""
    return {int(v.shape[0]) for v in feed.values() if np.ndim(v)}


def output_axis(spec: ModelSpec, output: str, shape: tuple[int, ...], sizes: set[int]) -> int | None:
    """The sample axis of ``output``: the one its declared ``shape`` gives (``OutputSpec.shape``),
    else the one found from the batch sizes (``sample_axis``)."""
    try:
        axis = spec.sample_axis_of(output)
    except KeyError:
        return sample_axis(shape, sizes)
    return axis if axis is not None and axis < len(shape) else None


def sample_axis(shape: tuple[int, ...], sizes: set[int]) -> int | None:
    """The axis of an output that runs over samples: axis 0 when its size is a batch size, else
    the one axis whose size is; None (the whole output is one sample) when none or several are.

    Outputs need not share it: CLIP's text embeddings run over texts, its image embeddings over
    images, and a similarity matrix over both (its axis 0, the images)."""
    axes = [a for a, n in enumerate(shape) if n in sizes]
    if not axes:
        return None
    return axes[0] if axes[0] == 0 or len(axes) == 1 else None


def samples_first(values: np.ndarray, axis: int | None) -> np.ndarray:
    """``values`` with the samples along axis 0 (a whole-output sample becomes one row)."""
    return values[np.newaxis] if axis is None else np.moveaxis(values, axis, 0)


def _nonfinite_samples(result: Mapping[str, np.ndarray], axes: Mapping[str, int | None]) -> int:
    """Samples where any output holds NaN or inf; outputs over the same number of samples are
    combined row by row, and the largest count of such groups is reported."""
    bad: dict[int, np.ndarray] = {}
    for name, axis in axes.items():
        values = np.asarray(result[name])
        if not np.issubdtype(values.dtype, np.floating) or values.ndim == 0:
            continue
        rows = samples_first(values, axis)
        mask = ~np.isfinite(rows.reshape(rows.shape[0], -1)).all(axis=1)
        count = len(mask)
        bad[count] = mask if count not in bad else bad[count] | mask
    return max((int(m.sum()) for m in bad.values()), default=0)


__all__ = [
    "ENGINE_SUFFIXES",
    "AccuracyReport",
    "LabelledBatch",
    "OnDevice",
    "OutputAgreement",
    "RecordedOutputs",
    "VariantAccuracy",
    "check_device",
    "evaluate",
    "model_file",
]
