"""``mmexport build``: a TensorRT engine from an ONNX artifact, for a target."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mmexport.cli.options import FILE, echo_notes, json_option, output_option, quiet_option, target_option
from mmexport.cli.progress import show_notes
from mmexport.trt.profiles import PROFILE_SYNTAX, STATIC_AT


@click.command("build")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@target_option("Where the engine runs: sets the workspace cap, optimization level and DLA cores.")
@output_option("Default: MODEL.TARGET.engine beside MODEL.", FILE)
@click.option("--workspace", default=None, metavar="SIZE", help="Builder workspace cap, e.g. 2G or 512M.")
@click.option("--opt-level", type=click.IntRange(0, 5), default=None, help="Builder optimization level.")
@click.option(
    "--timing-cache",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Timing cache file: read if present, written after a successful build; share it between builds.",
)
@click.option(
    "--hardware-compat",
    type=click.Choice(["ampere+", "same-cc"]),
    default=None,
    help="Engine runs on other GPUs: any Ampere or newer, or any with the same compute capability.",
)
@click.option(
    "--version-compatible", is_flag=True, help="Engine runs on later TensorRT releases of this major version."
)
@click.option("--dla-core", type=click.IntRange(min=0), default=None, help="Run on this DLA core (Jetson).")
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    metavar="SPEC",
    help=f"An extra optimization profile, {PROFILE_SYNTAX}; named dims not given keep the spec's "
    "range (repeatable; e.g. --profile batch=1:1:1 --profile batch=8:16:32).",
)
@click.option(
    "--static-shapes",
    type=click.Choice(STATIC_AT),
    default=None,
    help="Fix every dim at this point of its range (min = opt = max); DLA needs it.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp16", "int8"]),
    default=None,
    help="TensorRT 10 only, on an FP32 ONNX: builder-flag FP16, or implicit INT8 from the calibration "
    "cache. Default: the ONNX's own precision.",
)
@click.option(
    "--int8-calib",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TensorRT 10 implicit INT8 from this native cache (default: MODEL.calib or MODEL.int8.calib).",
)
@json_option("Print the result (or the error) as JSON on stdout.")
@quiet_option
def build_cmd(
    model: Path,
    target: str,
    output: Path | None,
    workspace: str | None,
    opt_level: int | None,
    timing_cache: Path | None,
    hardware_compat: str | None,
    version_compatible: bool,
    dla_core: int | None,
    profiles: tuple[str, ...],
    static_shapes: str | None,
    precision: str | None,
    int8_calib: Path | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Build a TensorRT engine from an ONNX artifact (with its manifest) for a target.

    Profiles come from the spec in the manifest, precision from the ONNX (strongly typed network).
    Writes the raw plan (loadable by trtexec, Triton and DeepStream) and OUTPUT.json, the engine
    manifest the runtime checks before loading.

    \b
    Examples:
      mmexport build model.int8.onnx --target jetson-orin -o model.orin.engine
      mmexport build model.fp16.onnx --timing-cache trt.cache --profile batch=1:1:1
      mmexport build model.onnx --target jetson-orin --dla-core 0 --static-shapes opt --precision fp16
    """
    from mmexport.trt.build_options import BuildOptions, parse_size
    from mmexport.trt.build_stage import build_engine
    from mmexport.trt.targets import get_target

    options = BuildOptions(
        target=get_target(target),
        workspace_bytes=parse_size(workspace) if workspace is not None else None,
        opt_level=opt_level,
        timing_cache=timing_cache,
        hardware_compat=hardware_compat,
        version_compatible=version_compatible,
        dla_core=dla_core,
        profiles=profiles,
        static_shapes=static_shapes,
        precision=precision,
        int8_calib=int8_calib,
    )
    show_notes(quiet)
    result = build_engine(model, output or model.with_name(f"{model.stem}.{target}.engine"), options)
    echo_notes(result.notes)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    if result.gpu_fallback:
        click.echo(f"{len(result.gpu_fallback)} layer(s) fall back from DLA to the GPU:")
        for layer in result.gpu_fallback:
            click.echo(f"  {layer}")
    info = result.info
    click.echo(
        f"wrote {result.path} and {result.path}.json: {info.precision} engine for {info.target}, "
        f"TensorRT {info.tensorrt_version}, {len(info.profiles)} profile(s), {info.build_seconds:.1f} s"
    )
