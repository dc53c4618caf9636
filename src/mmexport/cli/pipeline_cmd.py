"""``mmexport pipeline``: the main job, from a PyTorch model to one report folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mmexport.cli.options import (
    data_option,
    eval_options,
    json_option,
    method_option,
    output_option,
    quiet_option,
    samples_option,
    spec_option,
    target_option,
)
from mmexport.cli.progress import counter, show_notes
from mmexport.core.progress import no_progress
from mmexport.pipeline import DEFAULT_DURATION_S, DEFAULT_EVAL_SAMPLES, DEFAULT_SAMPLES
from mmexport.pipeline.config import DEFAULT_MAX_ACCURACY_DROP


@click.command("pipeline")
@click.argument("model", required=False, metavar="[MODEL]")
@output_option(
    "Report folder: the ONNX variants, report.md, report.json, latency.png.",
    click.Path(file_okay=False, path_type=Path),
    default=Path("report"),
    show_default=True,
)
@spec_option("Spec JSON for a user model (as in to-onnx). Built-in models carry their own.")
@data_option(
    "FP16 scan and INT8 calibration data (default: synthetic for built-ins, else random feeds "
    "from the spec, which calibrate poorly)."
)
@samples_option(DEFAULT_SAMPLES, "Calibration samples.")
@eval_options(
    DEFAULT_EVAL_SAMPLES,
    "for every variant (default: the built-in task's held-out split, else random feeds from the spec)",
    allow_none=False,
)
@method_option
@target_option(
    "TensorRT target: checked offline before the expensive steps; engines are built for it "
    "where TensorRT is installed.",
    default="gpu",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_DURATION_S,
    show_default=True,
    help="Seconds of timed calls per variant and batch size.",
)
@click.option(
    "--cuda-graph",
    is_flag=True,
    help="Measure the TensorRT engine replayed as a CUDA graph (the ONNX variants run on the CPU).",
)
@click.option(
    "--max-accuracy-drop",
    type=click.FloatRange(min=0),
    default=DEFAULT_MAX_ACCURACY_DROP,
    show_default=True,
    help="Recommendation gate: points of task accuracy (or top-1 agreement) a variant may lose.",
)
@click.option(
    "--min-cosine",
    type=click.FloatRange(-1, 1),
    default=None,
    help="Recommendation gate: lowest per-sample cosine similarity to FP32 a variant may have.",
)
@json_option("Print report.json (or the error) on stdout.")
@quiet_option
def pipeline_cmd(
    model: str | None,
    output: Path,
    spec_path: Path | None,
    data: str | None,
    eval_data: str | None,
    samples: int,
    eval_samples: int,
    method: str,
    target: str,
    duration: float,
    cuda_graph: bool,
    max_accuracy_drop: float,
    min_cosine: float | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Export MODEL, make FP16 and INT8 variants, measure accuracy and latency, write one report.

    MODEL is a built-in name (default: the default built-in model), package.module:factory or
    path/to/file.py:factory, as in to-onnx. Stages: export (with the parity gate), FP16, INT8
    calibration, TensorRT engine (skipped, with the reason, where it cannot be built), accuracy
    of every variant on one evaluation source, benchmarks at the spec's opt shape (batch 1 and
    the opt batch), interleaved. report.md is written last: a folder without it is unfinished.

    \b
    Examples:
      mmexport pipeline -o report/
      mmexport pipeline my_model.py:build --spec spec.json --data ./samples/ -o report/
    """
    from mmexport.pipeline import PipelineConfig, run_pipeline, table, write_report
    from mmexport.pipeline.report import recommendation_lines

    config = PipelineConfig(
        model=model,
        output=output,
        spec=spec_path,
        data=data,
        eval_data=eval_data,
        samples=samples,
        eval_samples=eval_samples,
        method=method,
        target=target,
        duration_s=duration,
        cuda_graph=cuda_graph,
        max_accuracy_drop=max_accuracy_drop,
        min_cosine=min_cosine,
    )
    show_notes(quiet, indent="")
    result = run_pipeline(config, progress=counter("calibrating", quiet) or no_progress)
    payload = write_report(result)
    if as_json:
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    click.echo(table(result))
    for line in recommendation_lines(payload["recommendation"]):
        click.echo(line)
    click.echo(f"\n{result.engine['reason']}")
    click.echo(f"wrote {output / 'report.md'}, report.json and the models ({result.seconds['total']:.0f} s)")


__all__ = ["pipeline_cmd"]
