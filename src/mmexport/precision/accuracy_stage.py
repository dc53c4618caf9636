"""The ``accuracy`` stage: artifacts of one model compared on one evaluation source."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmexport.core.artifact import LoadedArtifact, load_artifact
from mmexport.core.errors import ArtifactError, MmexportError
from mmexport.core.manifest import Manifest
from mmexport.core.onnx_mapped import MappedModel
from mmexport.core.progress import Progress, no_progress
from mmexport.core.spec import ModelSpec
from mmexport.precision.accuracy import ENGINE_SUFFIXES, AccuracyReport, OnDevice, check_device
from mmexport.precision.common import EVAL_BUDGET, Budget, evaluation, load_source_model
from mmexport.precision.fp16 import same_model

DEFAULT_EVAL_SAMPLES = EVAL_BUDGET.real


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
    loaded: list[tuple[Path, Manifest, MappedModel | Path]] = [
        (reference.path, reference.manifest, reference.graph)
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
) -> tuple[Path, Manifest, MappedModel | Path]:
    """An ONNX artifact (its graph; onnxruntime reads the weights from the file) or a TensorRT
    engine (left to the runtime), with its manifest."""
    if artifact.path.suffix not in ENGINE_SUFFIXES:
        source = load_source_model(artifact, require=None, spec=spec)
        return source.path, source.manifest, source.graph
    if artifact.manifest is None:
        raise ArtifactError(str(artifact.path), "is not an engine with its manifest (model.engine.json)")
    return artifact.path, artifact.manifest, artifact.path
