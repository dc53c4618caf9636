"""``mmexport bundle`` and ``mmexport unbundle``: ONNX artifacts to a device, engines built there."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from mmexport.cli.options import json_option, output_option, quiet_option
from mmexport.cli.progress import show_notes
from mmexport.deploy.bundle_targets import BUNDLE_TARGETS


def _targets_help() -> str:
    rows = []
    for t in BUNDLE_TARGETS.values():
        unverified = "; unverified" if {"tensorrt", "cuda", "python"} & set(t.unverified) else ""
        rows.append(f"{t.name} (TensorRT {t.tensorrt}, CUDA {t.cuda}, Python {t.python}{unverified})")
    return "Device and software stack: " + "; ".join(rows) + "."


@click.command("bundle")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--target", required=True, metavar="NAME", help=_targets_help())
@output_option("The archive to write (.tar.gz).", required=True)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@json_option("Print the result (or the error) as JSON on stdout.")
@quiet_option
def bundle_cmd(
    artifacts: tuple[Path, ...], target: str, output: Path, overwrite: bool, as_json: bool, quiet: bool
) -> None:
    """Pack ONNX ARTIFACTS (with their manifests, external data and INT8 calibration caches) for a
    device: build.sh builds the TensorRT engines there, with mmexport build or trtexec.

    Engines are not bundled: they are tied to the TensorRT version, GPU and platform, so they are
    built on the device. The archive also holds requirements.txt and README.txt for the target's
    software stack, SHA256SUMS and bundle.json (every file's size and sha256).

    \b
    Examples:
      mmexport bundle model.onnx model.int8.onnx --target jetson-orin-jp6 -o orin.tar.gz
      mmexport bundle model.fp16.onnx --target gpu-trt11 -o server.tar.gz --json
    """
    from mmexport.deploy.bundle import make_bundle

    show_notes(quiet)
    result = make_bundle(artifacts, target, output, overwrite=overwrite)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    bundle = result.bundle
    click.echo(
        f"wrote {result.path} ({result.bytes / 1e6:.1f} MB, {len(bundle['files']) + 1} files) "
        f"for {result.target.name}: {result.target.description}"
    )
    for artifact in bundle["artifacts"]:
        cache = (
            f", calibration cache {artifact['calibration_cache']}" if artifact["calibration_cache"] else ""
        )
        click.echo(f"  {artifact['onnx']} ({artifact['precision']}) -> {artifact['engine']}{cache}")
    archive = shlex.quote(result.path.name)
    click.echo(f"next, on the device: mmexport unbundle {archive} -o DIR && cd DIR && bash build.sh")


@click.command("unbundle")
@click.argument("archive", type=click.Path(path_type=Path))
@output_option("The folder to unpack into.", required=True)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it holds an unpacked bundle.")
@json_option("Print the result (or the error) as JSON on stdout.")
@quiet_option
def unbundle_cmd(archive: Path, output: Path, overwrite: bool, as_json: bool, quiet: bool) -> None:
    """Unpack a bundle made by `mmexport bundle` into OUTPUT, checking everything first.

    Members with absolute paths, '..', links, devices, duplicate names or sizes over the limits
    are refused before anything is written. Every file is checked against bundle.json and every
    model against its own manifest (sha256) in a staging folder; OUTPUT appears only if all match.

    \b
    Example:
      mmexport unbundle orin.tar.gz -o orin && cd orin && bash build.sh
    """
    from mmexport.deploy.bundle import unbundle

    show_notes(quiet)
    result = unbundle(archive, output, overwrite=overwrite)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    bundle = result.bundle
    target = bundle["target"]
    click.echo(
        f"unpacked {len(bundle['files']) + 1} files into {result.folder} (every sha256 checked): "
        f"bundle for {target.get('name')}, made {bundle['created']} by mmexport {bundle['mmexport_version']}"
    )
    for artifact in bundle["artifacts"]:
        click.echo(f"  {artifact['onnx']} ({artifact['precision']}) -> {artifact['engine']}")
    click.echo(f"next: {result.next_step}")
