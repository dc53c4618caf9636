"""Per-part precision of a split export: ``mmexport fp16 FOLDER`` / ``mmexport calibrate FOLDER``.

Each part gets its own choice (``fp32``, ``fp16`` or ``int8``), made by the precision stages
(``precision.stages.to_fp16`` / ``calibrate``) on that part's ONNX. Their data comes from the
model's data source: an encoder reads the model inputs it takes; a downstream part (the fusion)
reads what the FP32 upstream parts make of the same samples (run by ``SplitSession.part_inputs``).
The result is a new split folder with the chosen variants and a composition manifest recording
each part's precision, and the composed variant's agreement with the FP32 composition.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmexport.core.errors import ArtifactError, InputError
from mmexport.core.files import sha256_file
from mmexport.core.manifest import external_data_file, manifest_path, read_manifest
from mmexport.core.progress import Progress, nested, no_progress
from mmexport.core.spec import ModelSpec
from mmexport.precision.stages import (
    DEFAULT_CALIBRATION_SAMPLES,
    DEFAULT_EVAL_SAMPLES,
    CalibrationConfig,
    Fp16Config,
    StageResult,
    calibrate,
    to_fp16,
)
from mmexport.runtime.compare import sample_cosines
from mmexport.split.composition import PRECISIONS, Composition, read_composition
from mmexport.split.files import check_folder, publish_folder, staged_folder
from mmexport.split.session import SplitSession

log = logging.getLogger(__name__)


def parse_parts(text: str | None, composition: Composition, default: str) -> dict[str, str]:
    """``"image=int8,fuse=fp32"`` -> a precision for every part (the others get ``default``).
    Each mistake is one ``InputError`` saying what is wrong: not PART=PRECISION, an unknown part
    or precision, a part named twice."""
    names = [p.name for p in composition.parts]
    choices = dict.fromkeys(names, default)
    given: dict[str, str] = {}
    for item in filter(None, (i.strip() for i in (text or "").split(","))):
        name, sep, precision = (s.strip() for s in item.partition("="))
        if not sep:
            raise InputError(None, f"--parts {item!r} is not PART=PRECISION", hint=f"e.g. {names[0]}=fp16")
        if name not in names:
            raise _choice_error(item, "part", name, names)
        if precision not in PRECISIONS:
            raise _choice_error(item, "precision", precision, list(PRECISIONS))
        if name in given:
            raise InputError(
                None,
                f"--parts names part {name!r} twice",
                hint=f"{name}={given[name]}, {name}={precision}",
            )
        given[name] = choices[name] = precision
    return choices


def _choice_error(item: str, what: str, value: str, allowed: list[str]) -> InputError:
    return InputError(
        None,
        f"--parts {item!r}: unknown {what} {value!r}",
        expected=allowed,
        actual=value,
        hint=f"{what}s: {', '.join(allowed)}",
    )


@dataclass
class SplitPrecisionResult:
    folder: Path
    composition: Composition
    parts: dict[str, StageResult]  # the parts converted (fp32 parts are copied)
    agreement: dict[str, Any] | None  # the composed variant against the FP32 composition
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def split_precision(
    folder: str | Path,
    output: str | Path,
    choices: Mapping[str, str],
    *,
    data: Any = None,
    eval_data: Any = None,
    eval_samples: int = DEFAULT_EVAL_SAMPLES,
    fp16: Fp16Config | None = None,
    calibration: CalibrationConfig | None = None,
    progress: Progress = no_progress,
) -> SplitPrecisionResult:
    """Write ``output``: the split export ``folder`` with each part in its chosen precision
    (``choices``: part -> fp32, fp16 or int8, for every part)."""
    folder, output = Path(folder), Path(output)
    source = read_composition(folder)
    _check_request(source, folder, output, choices)
    configs = _Configs(fp16 or Fp16Config(), calibration or CalibrationConfig(), progress)
    composition = copy.deepcopy(source)
    with staged_folder(output) as stage, SplitSession(folder, parallel=False, spin=False) as reference:
        calib = _PartData(
            reference,
            data,
            "calibration",
            configs.calibration.samples or DEFAULT_CALIBRATION_SAMPLES,
            configs.calibration.batch_size,
        )
        evaluation = _PartData(reference, eval_data, "evaluation", eval_samples, 50) if eval_samples else None
        results, seconds = _make_parts(composition, choices, folder, stage, calib, evaluation, configs)
        composition.producer = {
            **source.producer,
            "stage": "split precision",
            "from": {"folder": str(folder), "parts": {p.name: p.file for p in source.parts}},
            "precisions": dict(choices),
            "data": calib.description,
        }
        composition.write(stage)
        agreement = None
        if evaluation is not None:
            t0 = time.perf_counter()
            log.info("composed variant against the FP32 composition")
            with SplitSession(stage, parallel=False, spin=False) as variant:
                agreement = compare_pipelines(
                    reference, variant, evaluation.model_batches(), composition.spec
                )
            composition.validation["composed_agreement"] = agreement
            composition.write(stage)
            seconds["composed"] = time.perf_counter() - t0
        publish_folder(stage, output)
    notes = [f"{name}: {note}" for name, r in results.items() for note in r.notes]
    return SplitPrecisionResult(output, composition, results, agreement, notes, seconds)


def _check_request(source: Composition, folder: Path, output: Path, choices: Mapping[str, str]) -> None:
    """Before any work: an FP32 source, another output folder, a known precision for every part."""
    not_fp32 = [p.name for p in source.parts if p.precision != "fp32"]
    if not_fp32:
        raise ArtifactError(
            str(folder),
            f"part {not_fp32[0]!r} is not FP32; convert the FP32 split export from to-onnx --split",
        )
    names = [p.name for p in source.parts]
    missing = [n for n in names if n not in choices]
    if missing:
        raise InputError(None, f"choices lack part(s) {', '.join(missing)}", expected=names)
    for name, precision in choices.items():
        if name not in names:
            raise _choice_error(f"{name}={precision}", "part", name, names)
        if precision not in PRECISIONS:
            raise InputError(
                None, f"part {name!r}: precision {precision!r}", expected=list(PRECISIONS), actual=precision,
                hint=f"precisions: {', '.join(PRECISIONS)}",
            )  # fmt: skip
    if output.resolve() == folder.resolve():
        raise ArtifactError(str(output), "is the FP32 folder itself; give another -o")
    check_folder(output)


@dataclass(frozen=True)
class _Configs:
    """What every part's precision stage gets besides its data."""

    fp16: Fp16Config
    calibration: CalibrationConfig
    progress: Progress


def _make_parts(
    composition: Composition,
    choices: Mapping[str, str],
    folder: Path,
    stage: Path,
    calib: _PartData,
    evaluation: _PartData | None,
    configs: _Configs,
) -> tuple[dict[str, StageResult], dict[str, float]]:
    """Each part copied (fp32) or converted into ``stage``; ``composition``'s parts updated
    (file, sha256, precision). Returns the converted parts' results and seconds per part."""
    results: dict[str, StageResult] = {}
    seconds: dict[str, float] = {}
    for part in composition.parts:
        choice, t0 = choices[part.name], time.perf_counter()
        target = stage / part.file
        if choice == "fp32":
            _copy_part(folder / part.file, stage)
            sha256 = sha256_file(target)  # the copy, checked by SplitSession against this
        else:
            log.info(f"part {part.name!r}: {choice}")
            target = stage / f"{Path(part.file).stem}.{choice}.onnx"
            result = _convert(folder / part.file, target, choice, part.name, calib, evaluation, configs)
            results[part.name] = result
            sha256 = result.artifact.sha256 if result.artifact is not None else sha256_file(target)
        part.file, part.sha256, part.precision = target.name, sha256, choice
        seconds[part.name] = time.perf_counter() - t0
    return results, seconds


def _copy_part(source: Path, stage: Path) -> None:
    """An FP32 part as it is: its ONNX, its manifest and its external data file if it has one."""
    manifest = read_manifest(source)
    if manifest is None:
        raise ArtifactError(str(source), "has no manifest beside it; a split export writes one per part")
    data = external_data_file(source, manifest)
    for file in (source, manifest_path(source), *([data[0]] if data else [])):
        shutil.copy2(file, stage / file.name)


def _convert(
    source: Path,
    target: Path,
    choice: str,
    part: str,
    calib: _PartData,
    evaluation: _PartData | None,
    configs: _Configs,
) -> StageResult:
    """One part through the precision stage it chose, on the data its upstream parts produce."""
    eval_data = evaluation.for_part(part) if evaluation is not None else None
    eval_samples = evaluation.samples if evaluation is not None else 0
    with nested():  # the part's own notes, under its name
        if choice == "fp16":
            return to_fp16(
                source, target, config=configs.fp16, data=calib.for_part(part), eval_data=eval_data,
                eval_samples=eval_samples,
            )  # fmt: skip
        return calibrate(
            source, target, data=calib.for_part(part), config=configs.calibration, eval_data=eval_data,
            eval_samples=eval_samples, progress=configs.progress,
        )  # fmt: skip


class _PartData:
    """The model's data source, and for each part the feeds it gets from it (upstream parts run
    in FP32 batch by batch, so nothing is kept in memory). Labels go with the fusion part only:
    they are the model outputs' classes, not the encoders'."""

    def __init__(self, pipe: SplitSession, data: Any, split: str, samples: int, batch_size: int) -> None:
        self.pipe = pipe
        self.samples = samples
        self.source = _model_source(pipe.composition, data, split, samples, batch_size)
        self.description = self.source.description

    def model_batches(self) -> Iterator[Any]:
        return iter(self.source.batches())

    def for_part(self, part: str) -> Callable[[ModelSpec], Iterator[Any]]:
        entry = self.pipe.composition.part(part)
        labelled = set(entry.outputs) >= set(self.pipe.spec.output_names)

        def feeds(_spec: ModelSpec) -> Iterator[Any]:
            for batch in self.source.batches():
                if entry.model_inputs and len(entry.model_inputs) == len(entry.inputs):
                    feed = {n: batch.feed[n] for n in entry.model_inputs}
                else:
                    feed = self.pipe.part_inputs(batch.feed)[part]
                yield (feed, batch.labels) if labelled and batch.labels is not None else feed

        feeds.__name__ = f"part {part!r} inputs from {self.description}"
        return feeds


def _model_source(composition: Composition, data: Any, split: str, samples: int, batch_size: int) -> Any:
    """Like the whole model's precision stages: ``data``, else the built-in task, else random feeds."""
    from mmexport.data.sources import open_source
    from mmexport.precision.common import SpecFeeds

    source = composition.source
    builtin = source.get("model") if source.get("builtin") is True else None
    if data is None and builtin is None:
        return SpecFeeds(composition.spec, samples, seed=0 if split == "calibration" else 1)
    return open_source(
        "synthetic" if data is None else data,
        composition.spec,
        builtin=builtin,
        split=split,
        samples=samples,
        batch_size=batch_size,
    )


def compare_pipelines(
    reference: SplitSession, variant: SplitSession, batches: Iterator[Any], spec: ModelSpec
) -> dict[str, Any]:
    """Accuracy of both (with labels), top-1 agreement and worst-sample cosine of the variant."""
    task = next((o.name for o in spec.outputs if o.labels), spec.output_names[0])
    seen = agree = 0
    correct = [0, 0]
    labelled = True
    worst = 1.0
    for batch in batches:
        ref = reference.run(batch.feed)[task]
        got = variant.run(batch.feed)[task]
        agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
        worst = min(worst, float(sample_cosines(got, ref).min(initial=1.0)))
        if batch.labels is None:
            labelled = False
        else:
            correct[0] += int((ref.argmax(-1) == batch.labels).sum())
            correct[1] += int((got.argmax(-1) == batch.labels).sum())
        seen += len(ref)
    return {
        "output": task,
        "samples": seen,
        "accuracy_fp32": correct[0] / seen if labelled and seen else None,
        "accuracy": correct[1] / seen if labelled and seen else None,
        "top1_agreement": agree / seen if seen else None,
        "worst_cosine": worst,
    }
