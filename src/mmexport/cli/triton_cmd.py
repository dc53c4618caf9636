"""``mmexport triton``: a Triton Inference Server model repository entry from artifacts."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mmexport.cli.options import echo_notes, json_option, quiet_option
from mmexport.cli.progress import show_notes

if TYPE_CHECKING:
    from mmexport.deploy.triton import TritonResult


def _size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    from mmexport.core.errors import MmexportError
    from mmexport.trt.build_options import parse_size

    try:
        return parse_size(value)
    except MmexportError as e:
        raise click.BadParameter(e.message) from None


@click.command("triton")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="ARTIFACT...")
@click.option(
    "--repo",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Triton model repository (created if missing); the model is written to REPO/NAME.",
)
@click.option(
    "--name",
    help="Model name: letters, digits, '_', '.', '-', at most 200 (default: the artifact's file name "
    "without its suffix, '.' as '_').",
)
@click.option(
    "--max-batch",
    type=int,
    default=None,
    help="max_batch_size (default: the max of the spec's batch dim; must lie inside its range).",
)
@click.option(
    "--instances", type=int, default=1, show_default=True, help="Model instances (instance_group count)."
)
@click.option(
    "--kind",
    type=click.Choice(["gpu", "cpu"]),
    default="gpu",
    show_default=True,
    help="Instance kind; cpu runs the ONNX with onnxruntime on CPUs (not engines).",
)
@click.option(
    "--dynamic-batching/--no-dynamic-batching",
    default=None,
    help="Triton's dynamic batcher, preferring the spec's opt batch and max_batch_size "
    "[default: on when the model has a batch dim].",
)
@click.option(
    "--max-queue-delay",
    "max_queue_delay_us",
    type=int,
    default=100,
    show_default=True,
    metavar="MICROSECONDS",
    help="How long the dynamic batcher waits to fill a batch.",
)
@click.option(
    "--trt-accelerator",
    is_flag=True,
    help="ONNX only: run it through onnxruntime's TensorRT execution provider (precision_mode from "
    "the ONNX's precision: FP32, FP16, or INT8 for Q/DQ).",
)
@click.option("--fp16", is_flag=True, help="With --trt-accelerator on an FP32 ONNX: precision_mode FP16.")
@click.option(
    "--workspace",
    callback=_size,
    metavar="SIZE",
    help="With --trt-accelerator: TensorRT's workspace (max_workspace_size_bytes), e.g. 2G [default: 1G].",
)
@click.option("--overwrite", is_flag=True, help="Replace REPO/NAME if it exists.")
@json_option("Print the result (paths, config, perf_analyzer command) or the error as JSON on stdout.")
@quiet_option
def triton_cmd(
    artifacts: tuple[Path, ...],
    repo: Path,
    name: str | None,
    max_batch: int | None,
    instances: int,
    kind: str,
    dynamic_batching: bool | None,
    max_queue_delay_us: int,
    trt_accelerator: bool,
    fp16: bool,
    workspace: int | None,
    overwrite: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Write a Triton model (config.pbtxt, 1/model.onnx or model.plan, the manifest) for ARTIFACT.

    ARTIFACT is one ONNX file (FP32, FP16 or Q/DQ INT8: platform onnxruntime_onnx), or one or more
    TensorRT engines with their manifests (tensorrt_plan), at most one per GPU compute capability:
    several become model_<cc>.plan with cc_model_filenames. Inputs, outputs, data types and dims
    come from the manifest's spec and the graph; a batch dim shared by every input and output
    becomes max_batch_size. Prints the perf_analyzer command that load-tests the model.

    \b
    Examples:
      mmexport triton model.fp16.onnx --repo models --name fusion
      mmexport triton model.onnx --repo models --trt-accelerator --fp16 --instances 2
      mmexport triton model.orin.engine model.h100.engine --repo models --name fusion_trt
    """
    from mmexport.deploy.triton import triton_repository
    from mmexport.deploy.triton_model import TritonOptions

    options = TritonOptions(
        name=name,
        max_batch=max_batch,
        instances=instances,
        kind=kind,
        dynamic_batching=dynamic_batching,
        max_queue_delay_us=max_queue_delay_us,
        trt_accelerator=trt_accelerator,
        fp16=fp16,
        workspace_bytes=workspace,
    )
    show_notes(quiet)
    result = triton_repository(artifacts, repo, options, overwrite=overwrite)
    echo_notes(result.model.notes)
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_result(result))


def format_result(result: TritonResult) -> str:
    config = result.model.config
    batching = f"max_batch_size {config.max_batch_size}"
    if config.dynamic_batching is not None:
        preferred = ", ".join(map(str, config.dynamic_batching.preferred_batch_size))
        delay = config.dynamic_batching.max_queue_delay_microseconds
        batching += f", dynamic batching (preferred {preferred}; queue delay {delay} us)"
    groups = ", ".join(f"{g.count} x {g.kind}" for g in config.instance_group)
    accelerators = "".join(
        f", {a.name} accelerator {a.parameters.get('precision_mode')}" for a in config.gpu_accelerators
    )
    verb = "replaced" if result.replaced else "wrote"
    lines = [f"{verb} {result.path}: {config.platform}, {batching}, {groups}{accelerators}"]
    lines += [f"  {name:<24} {_human(size):>9}" for name, size in result.sizes.items()]
    lines.append(f"serve:     tritonserver --model-repository {shlex.quote(str(result.repository))}")
    lines.append(f"load test: {result.model.perf_analyzer}")
    return "\n".join(lines)


def _human(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"
