"""``mmexport accuracy``: variants of one model compared on one evaluation source."""

from __future__ import annotations

from pathlib import Path

import click

from mmexport.cli.options import (
    BUDGET_HELP,
    data_option,
    json_option,
    quiet_option,
    samples_option,
    spec_option,
)
from mmexport.cli.progress import counter, show_notes
from mmexport.core.progress import no_progress


@click.command("accuracy")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@spec_option("Spec JSON for an ONNX that mmexport did not export (no manifest beside it).")
@data_option(
    "Evaluation data (default: the built-in task's held-out split, else random feeds from the "
    "spec, which give agreement but no task accuracy)."
)
@samples_option(None, f"Evaluation samples. [default: {BUDGET_HELP}]")
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="Where the variants run: cpu (onnxruntime, the graph as written), or cuda / cuda:N (the "
    "runtime on onnxruntime's CUDA provider, as deployed; engines on that GPU).",
)
@click.option(
    "--reference-device",
    default=None,
    help="Where the first model (the reference) runs. [default: --device]",
)
@json_option("Print the report (or the error) as JSON on stdout.")
@quiet_option
def accuracy_cmd(
    models: tuple[Path, ...],
    spec_path: Path | None,
    data: str | None,
    samples: int | None,
    device: str,
    reference_device: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Compare variants of one model (the first is the reference) on one evaluation source.

    Per output: max abs and relative difference, cosine similarity and top-1 agreement with the
    reference; task accuracy when the data has labels.

    \b
    Example:
      mmexport accuracy model.onnx model.fp16.onnx model.int8.onnx --data ./eval_samples/
      mmexport accuracy model.onnx model.int8.onnx model.int8.engine --device cuda
    """
    from mmexport.precision.stages import accuracy

    show_notes(quiet)
    bar = counter("evaluating", quiet)
    report = accuracy(
        models,
        data=data,
        samples=samples,
        spec=spec_path,
        progress=bar or no_progress,
        device=device,
        reference_device=reference_device,
    )
    if bar is not None:
        bar.end()
    click.echo(report.to_json() if as_json else report.to_markdown())


__all__ = ["accuracy_cmd"]
