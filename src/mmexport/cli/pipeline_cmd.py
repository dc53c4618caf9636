"""``mmexport pipeline``: the main job, from a PyTorch model to one report folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

# the calibration progress line and data help are the calibrate command's, shared as they are
from mmexport.cli.options import DATA_HELP, calibration_progress, json_option, progress_printer
from mmexport.pipeline import DEFAULT_DURATION_S, DEFAULT_EVAL_SAMPLES, DEFAULT_SAMPLES
from mmexport.trt.targets import target_names


@click.command("pipeline")
@click.argument("model", required=False, metavar="[MODEL]")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("report"),
    show_default=True,
    help="Report folder: the ONNX variants, report.md, report.json, latency.png.",
)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Spec JSON for a user model (as in to-onnx). Built-in models carry their own.",
)
@click.option(
    "--data",
    default=None,
    help="FP16 scan and INT8 calibration data (default: synthetic for built-ins, else random feeds "
    "from the spec, which calibrate poorly). " + DATA_HELP,
)
@click.option(
    "--eval-data",
    default=None,
    help="Evaluation data for every variant (default: the built-in task's held-out split, else "
    "random feeds from the spec). " + DATA_HELP,
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=DEFAULT_SAMPLES,
    show_default=True,
    help="Calibration samples.",
)
@click.option(
    "--eval-samples",
    type=click.IntRange(min=1),
    default=DEFAULT_EVAL_SAMPLES,
    show_default=True,
    help="Evaluation samples.",
)
@click.option(
    "--method",
    type=click.Choice(["entropy", "minmax", "percentile"]),
    default="entropy",
    show_default=True,
    help="INT8 range choice from each tensor's histogram.",
)
@click.option(
    "--target",
    type=click.Choice(target_names()),
    default="gpu",
    show_default=True,
    help="TensorRT target: checked offline before the expensive steps; engines are built for it "
    "where TensorRT is installed.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_DURATION_S,
    show_default=True,
    help="Seconds of timed calls per variant and batch size.",
)
@json_option("Print report.json (or the error) on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
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
    )
    say = progress_printer(quiet, indent="")
    result = run_pipeline(config, say=say, progress=_line_ending(calibration_progress(quiet)))
    payload = write_report(result)
    if as_json:
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    click.echo(table(result))
    click.echo(f"\n{result.engine['reason']}")
    click.echo(f"wrote {output / 'report.md'}, report.json and the models ({result.seconds['total']:.0f} s)")


def _line_ending(show: Any) -> Any:
    """The calibrate command's progress rewrites one line on a terminal; end it when done."""
    if show is None or not sys.stderr.isatty():
        return show

    def wrapped(done: int, total: int | None) -> None:
        show(done, total)
        if total is not None and done >= total:
            click.echo("", err=True)

    return wrapped


__all__ = ["pipeline_cmd"]
