"""``mmexport fp16`` and ``mmexport calibrate`` (``mmexport accuracy``: accuracy_cmd.py)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mmexport.cli.artifacts import is_split_folder
from mmexport.cli.options import (
    data_option,
    echo_notes,
    eval_options,
    json_option,
    method_option,
    output_option,
    quiet_option,
    samples_option,
    spec_option,
)
from mmexport.cli.progress import counter, show_notes
from mmexport.core.progress import no_progress

if TYPE_CHECKING:
    from mmexport.precision.stages import StageResult

_MODEL = click.argument("model", type=click.Path(path_type=Path))
_OUTPUT_HELP = "With a split folder (to-onnx --split): the folder to write (default: MODEL-PRECISION)."
_PARTS = click.option(
    "--parts",
    default=None,
    metavar="PART=PRECISION[,...]",
    help="Split folder only: precision per part (fp32, fp16, int8), e.g. image=int8,text=fp16,fuse=fp32; "
    "parts not named get this command's precision.",
)
_SPEC = spec_option("Spec JSON for an ONNX that mmexport did not export (no manifest beside it).")
_EVAL = eval_options(
    None,
    "for the accuracy report (default: the built-in task's held-out split, or random feeds from the spec)",
    allow_none=True,
)
_JSON = json_option("Print the result (or the error) as JSON on stdout.")
_MAX_ABS_DIFF = click.option(
    "--max-abs-diff",
    type=click.FloatRange(min=0),
    default=None,
    help="Refuse the model (nothing written) if any output element differs from FP32 by more.",
)
CALIBRATION_DEFAULT = "512 samples of data; 32 random feeds at the opt shape without data"
DEFAULT_CALIBRATION_SAMPLES = 512  # precision.stages', without importing numpy and onnx for --help


def _default_output(model: Path, suffix: str) -> Path:
    return model.with_name(f"{model.stem}.{suffix}.onnx")


def _finish(result: StageResult, as_json: bool, what: str, extra: dict[str, Any]) -> None:
    echo_notes(result.notes)
    if as_json:
        accuracy = result.accuracy.to_dict() if result.accuracy is not None else None
        payload = {"path": str(result.path), "accuracy": accuracy, "notes": result.notes}
        click.echo(json.dumps({**payload, **extra, "seconds": result.seconds}, indent=2, default=str))
        return
    if result.accuracy is not None:
        click.echo(result.accuracy.to_markdown())
    click.echo(f"wrote {result.path} and {result.path}.json: {what}")


@click.command("fp16")
@_MODEL
@_SPEC
@output_option("Default: MODEL.fp16.onnx. " + _OUTPUT_HELP)
@_PARTS
@click.option(
    "--keep-fp32",
    multiple=True,
    metavar="OP_OR_NODE",
    help="Keep matching op types or node names in FP32 (shell wildcards; repeatable).",
)
@click.option("--fp16-io", is_flag=True, help="FP16 inputs and outputs too (default: FP32 at the boundary).")
@data_option("Sample data for the overflow scan and the check.")
@samples_option(32, "Samples of --data for the overflow scan and the check (one FP32 pass serves both).")
@click.option(
    "--min-cosine",
    type=click.FloatRange(-1, 1),
    default=0.99,
    show_default=True,
    help="Refuse the FP16 model if any sample's output cosine similarity to FP32 is lower.",
)
@_MAX_ABS_DIFF
@_EVAL
@_JSON
@quiet_option
def fp16_cmd(
    model: Path,
    spec_path: Path | None,
    output: Path | None,
    parts: str | None,
    keep_fp32: tuple[str, ...],
    fp16_io: bool,
    data: str | None,
    samples: int,
    min_cosine: float,
    max_abs_diff: float | None,
    eval_data: str | None,
    eval_samples: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Convert an FP32 ONNX (from to-onnx) to FP16, keeping unsafe parts in FP32.

    Kept in FP32: ops that overflow or lose precision in FP16 (Pow, Exp, Log, LayerNormalization,
    sums of squares...), nodes whose activations on sample data come near the FP16 range, and
    --keep-fp32 patterns. The FP16 model is compared with FP32 in onnxruntime before anything is
    written, then evaluated (task accuracy for the built-in models).

    \b
    Examples:
      mmexport fp16 model.onnx -o model.fp16.onnx
      mmexport fp16 model.onnx --keep-fp32 Softmax --keep-fp32 'node_attn*'
      mmexport fp16 fusion/ --parts fuse=fp32          # a split folder: per-part variants
    """
    from mmexport.precision.stages import Fp16Config, to_fp16

    fp16_config = Fp16Config(
        keep_fp32=keep_fp32,
        fp16_io=fp16_io,
        min_cosine=min_cosine,
        samples=samples,
        max_abs_diff=max_abs_diff,
    )
    if is_split_folder(model, parts=parts, spec_path=spec_path):
        split = _SplitRun(output, parts, data, eval_data, _split_eval(eval_samples), as_json, quiet)
        split.run(model, "fp16", fp16=fp16_config)
        return
    show_notes(quiet)
    bar = counter("scanning", quiet)
    result = to_fp16(
        model,
        output or _default_output(model, "fp16"),
        config=fp16_config,
        data=data,
        eval_data=eval_data,
        eval_samples=eval_samples,
        spec=spec_path,
        progress=bar or no_progress,
    )
    if bar is not None:
        bar.end()
    kept = result.kept_fp32
    _finish(result, as_json, f"{sum(len(v) for v in kept.values())} nodes kept in FP32", {"kept_fp32": kept})


@click.command("calibrate")
@_MODEL
@_SPEC
@output_option("Default: MODEL.int8.onnx. " + _OUTPUT_HELP)
@_PARTS
@data_option(
    "Calibration data (default: 'synthetic' for built-in models, else random feeds from the spec, "
    "which calibrate poorly)."
)
@method_option
@click.option(
    "--percentile",
    type=click.FloatRange(0, 100, min_open=True),
    default=99.99,
    show_default=True,
    help="With --method percentile: the share of |values| the range covers.",
)
@samples_option(None, f"Calibration samples. [default: {CALIBRATION_DEFAULT}]")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--trt-version",
    default="10.3.0",
    show_default=True,
    help="TensorRT version written in the .calib header (TensorRT refuses another version's cache).",
)
@click.option(
    "--max-accuracy-drop",
    type=click.FloatRange(min=0),
    default=None,
    help="Keep the costliest branches in FP32 until the accuracy drop (points) is within this.",
)
@click.option(
    "--layout",
    type=click.Choice(["tensorrt", "onnxruntime"]),
    default="tensorrt",
    show_default=True,
    help="Q/DQ pattern for this runtime: tensorrt (Q/DQ on op inputs; TensorRT fuses them) or "
    "onnxruntime (also on op outputs, INT32 bias: fused into QLinearConv/QLinearMatMul on CPU).",
)
@click.option(
    "--sensitivity/--no-sensitivity",
    default=None,
    help="Per-branch INT8 cost (one more pass over the evaluation data). [default: when the "
    "evaluation data has labels]",
)
@click.option(
    "--min-cosine",
    type=click.FloatRange(-1, 1),
    default=None,
    help="Refuse the INT8 model (nothing written) if any evaluated sample's output cosine similarity "
    "to FP32 is lower. Without it, a note warns below 0.99.",
)
@_MAX_ABS_DIFF
@_EVAL
@_JSON
@quiet_option
def calibrate_cmd(
    model: Path,
    spec_path: Path | None,
    output: Path | None,
    parts: str | None,
    data: str | None,
    method: str,
    percentile: float,
    samples: int | None,
    batch_size: int,
    trt_version: str,
    max_accuracy_drop: float | None,
    sensitivity: bool | None,
    layout: str,
    min_cosine: float | None,
    max_abs_diff: float | None,
    eval_data: str | None,
    eval_samples: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Calibrate an FP32 ONNX and write an INT8 Q/DQ ONNX plus TensorRT's calibration cache.

    The Q/DQ model follows TensorRT's rules (symmetric INT8, per-channel weights, inputs of
    weighted Conv/MatMul/Gemm only; attention's activation x activation MatMuls stay float) and
    runs in onnxruntime too; --layout onnxruntime lays it out for onnxruntime's INT8 kernels.
    Beside it, <output stem>.calib holds the same scales, for exactly the quantized tensors, in
    TensorRT's native cache format for TensorRT 10 implicit INT8 (trtexec --int8 --calib).
    Statistics are streamed: memory does not grow with --samples.

    \b
    Examples:
      mmexport calibrate model.onnx -o model.int8.onnx
      mmexport calibrate model.onnx --data ./calib_samples/ --method percentile --percentile 99.9
      mmexport calibrate model.onnx --max-accuracy-drop 0.5
      mmexport calibrate model.onnx --layout onnxruntime   # for onnxruntime on a CPU
      mmexport calibrate fusion/ --parts text=fp16,fuse=fp32   # a split folder: per-part variants
    """
    from mmexport.precision.stages import CalibrationConfig, calibrate

    config = CalibrationConfig(
        method=method,
        percentile=percentile,
        samples=samples,
        batch_size=batch_size,
        trt_version=trt_version,
        max_accuracy_drop=max_accuracy_drop,
        sensitivity=sensitivity,
        layout=layout,
        min_cosine=min_cosine,
        max_abs_diff=max_abs_diff,
    )
    if is_split_folder(model, parts=parts, spec_path=spec_path):
        config.samples = samples or DEFAULT_CALIBRATION_SAMPLES
        split = _SplitRun(output, parts, data, eval_data, _split_eval(eval_samples), as_json, quiet)
        split.run(model, "int8", calibration=config)
        return
    show_notes(quiet)
    bar = counter("calibrating", quiet)
    result = calibrate(
        model,
        output or _default_output(model, "int8"),
        data=data,
        config=config,
        eval_data=eval_data,
        eval_samples=eval_samples,
        spec=spec_path,
        progress=bar or no_progress,
    )
    if bar is not None:
        bar.end()  # the data may hold fewer samples than asked: the line is still open
    costs = result.sensitivity
    if costs and not as_json:
        click.echo("Per-branch INT8 cost (only that branch quantized):")
        for cost in costs:
            drop = "-" if cost.drop_points is None else f"{cost.drop_points:.2f} points"
            if cost.nodes == 0:
                drop = "nothing to quantize (no Conv/MatMul/Gemm): stays float"
            click.echo(f"  {cost.branch:<10} {cost.nodes:>3} nodes  {drop}")
    cache = result.cache.name if result.cache else "-"
    extra = {"calibration_cache": str(result.cache), "sensitivity": [vars(c) for c in costs]}
    _finish(result, as_json, f"{result.samples} samples, cache {cache}", extra)


def _split_eval(eval_samples: int | None) -> int:
    """A split folder's parts are evaluated on a fixed number of samples."""
    from mmexport.precision.stages import DEFAULT_EVAL_SAMPLES

    return DEFAULT_EVAL_SAMPLES if eval_samples is None else eval_samples


def _split_output(folder: Path, choices: dict[str, str]) -> Path:
    """Beside the folder, named after it and the precisions chosen (also for "." or "../x")."""
    kinds = sorted(set(choices.values()) - {"fp32"})
    absolute = Path(os.path.abspath(folder))
    return absolute.with_name(f"{absolute.name}-{kinds[0] if len(kinds) == 1 else 'mixed'}")


@dataclass
class _SplitRun:
    """The options a split folder's per-part conversion takes, and its report."""

    output: Path | None
    parts: str | None
    data: str | None
    eval_data: str | None
    eval_samples: int
    as_json: bool
    quiet: bool

    def run(self, folder: Path, default: str, **configs: Any) -> None:
        from mmexport.split.composition import read_composition
        from mmexport.split.precision import parse_parts, split_precision

        show_notes(self.quiet)
        bar = counter("calibrating", self.quiet)
        choices = parse_parts(self.parts, read_composition(folder, verify_files=False), default)
        result = split_precision(
            folder,
            self.output or _split_output(folder, choices),
            choices,
            data=self.data,
            eval_data=self.eval_data,
            eval_samples=self.eval_samples,
            progress=bar or no_progress,
            **configs,
        )
        if bar is not None:
            bar.end()
        echo_notes(result.notes)
        if self.as_json:
            payload = {
                "folder": str(result.folder),
                "precisions": result.composition.precisions,
                "agreement": result.agreement,
                "parts": {n: r.accuracy.to_dict() if r.accuracy else None for n, r in result.parts.items()},
                "notes": result.notes,
                "seconds": result.seconds,
            }
            click.echo(json.dumps(payload, indent=2, default=str))
            return
        for name, part in result.parts.items():
            if part.accuracy is not None:
                click.echo(f"part {name}:\n{part.accuracy.to_markdown()}")
        if result.agreement is not None:
            a = result.agreement
            accuracy = (
                ""
                if a["accuracy"] is None
                else f", accuracy {a['accuracy']:.4f} (FP32 {a['accuracy_fp32']:.4f})"
            )
            click.echo(
                f"composed: top-1 agreement with FP32 {a['top1_agreement']:.4f}, worst cosine "
                f"{a['worst_cosine']:.4f}{accuracy} on {a['samples']} samples"
            )
        precisions = ", ".join(f"{k}={v}" for k, v in result.composition.precisions.items())
        click.echo(f"wrote {result.folder}/ ({precisions}) and its composition.json")


__all__ = ["calibrate_cmd", "fp16_cmd"]
