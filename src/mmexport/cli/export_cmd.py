"""``mmexport to-onnx``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mmexport.cli.options import echo_notes, json_option, output_option, quiet_option, spec_option
from mmexport.cli.progress import Counter, show_notes
from mmexport.core.progress import no_progress
from mmexport.models import DEFAULT_MODEL

if TYPE_CHECKING:
    from mmexport.export import ToOnnxResult
    from mmexport.split.export import SplitResult


@click.command("to-onnx")
@click.argument("model", required=False, metavar="[MODEL]")
@output_option(
    "ONNX file to write (default: <model name>.onnx). Its manifest goes to <output>.json. "
    "With --split: the folder to write (default: <model name>/)."
)
@spec_option("Spec JSON (inputs, named dims with min/opt/max, outputs). Built-in models carry their own.")
@click.option(
    "--exporter",
    type=click.Choice(["dynamo", "torchscript"]),
    default="dynamo",
    show_default=True,
    help="torch.onnx exporter. torchscript is torch's deprecated one, for models dynamo cannot trace.",
)
@click.option(
    "--opset",
    type=click.IntRange(9, 23),
    default=None,
    help="ONNX opset (default 18: TensorRT 10.3+ and 11 parse it).",
)
@click.option(
    "--simplify/--no-simplify",
    default=False,
    show_default=True,
    help="Simplify with onnxslim; kept only if the simplified graph passes the parity gate too.",
)
@click.option(
    "--atol",
    type=click.FloatRange(min=0),
    default=None,
    help="Absolute tolerance for every output (default per dtype).",
)
@click.option(
    "--rtol",
    type=click.FloatRange(min=0),
    default=None,
    help="Relative tolerance for every output (default per dtype).",
)
@click.option(
    "--parity-points",
    default="opt,min,max",
    show_default=True,
    metavar="POINTS",
    help="Shape points of the parity gate: any of opt, min, max (each run once) and/or a number of "
    "random points inside the ranges, comma-separated (e.g. opt,min or opt,3). Fewer points on a big "
    "model trade coverage for time.",
)
@click.option(
    "--random-points",
    type=click.IntRange(0, 100),
    default=None,
    help="Random shape points checked besides the corners (same as a number in --parity-points).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the random shape points and inputs.",
)
@click.option(
    "--split",
    is_flag=True,
    help="One ONNX per modality encoder plus the fusion part, and composition.json, in the -o folder "
    "(the model must implement split_parts(); run it with mmexport.split.SplitSession).",
)
@json_option("Print the result (or the error) as JSON on stdout.")
@quiet_option
def to_onnx_cmd(
    model: str | None,
    output: Path | None,
    spec_path: Path | None,
    exporter: str,
    opset: int | None,
    simplify: bool,
    atol: float | None,
    rtol: float | None,
    parity_points: str,
    random_points: int | None,
    seed: int,
    split: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Export MODEL to ONNX with the spec's dims dynamic, and refuse it unless it matches PyTorch.

    With --json, the result (or the error, with the parity table) is printed as JSON on stdout.

    MODEL is a built-in name (default: the default built-in model), package.module:factory, or
    path/to/file.py:factory, where factory() returns a torch.nn.Module. Loading a factory runs
    its code. A user model needs --spec, or MMEXPORT_SPEC / mmexport_spec() in its module.

    The parity gate runs onnxruntime (CPU) against PyTorch at the opt point and the min and max
    corners of every dynamic dim, once each (--parity-points for fewer, or random points besides);
    any mismatch fails the command, prints the table of differences and writes nothing.

    With --split, each part (one encoder per modality, then the fusion part) is exported and
    gated on its own, and the parts run together must equal the whole model at the same points.

    \b
    Examples:
      mmexport to-onnx -o model.onnx
      mmexport to-onnx seed -o seed.onnx --simplify
      mmexport to-onnx my_model.py:build --spec spec.json -o model.onnx
      mmexport to-onnx fusion --split -o fusion/
    """
    from mmexport.export import DEFAULT_OPSET, ExportConfig, ParityConfig, to_onnx
    from mmexport.export.parity import format_report, parse_points

    name = model or DEFAULT_MODEL
    stem = name.rpartition(":")[2] if ":" in name else name
    show_notes(quiet)
    export = ExportConfig(exporter=exporter, opset=DEFAULT_OPSET if opset is None else opset)
    corners, random = parse_points(parity_points)
    random = random if random_points is None else random_points
    parity = ParityConfig(random_points=random, seed=seed, atol=atol, rtol=rtol, corners=corners)
    if split:
        from mmexport.split.export import to_onnx_split

        if simplify:
            raise click.UsageError("--simplify is not available with --split")
        if output is not None and output.suffix.lower() == ".onnx":
            raise click.UsageError("with --split, -o names a folder (e.g. -o fusion/), not an ONNX file")
        folder = output or Path(stem)
        split_result = to_onnx_split(model, folder, spec=spec_path, export=export, parity=parity)
        _report_split(split_result, as_json, quiet)
        return
    if output is not None and output.is_dir():  # -o accepts folders for --split only
        raise click.BadParameter(f"File {str(output)!r} is a directory.", param_hint="'-o' / '--output'")
    bar = None if quiet else Counter("parity", unit="points")
    result = to_onnx(
        model,
        output or Path(f"{stem}.onnx"),
        spec=spec_path,
        export=export,
        parity=parity,
        simplify=simplify,
        progress=bar or no_progress,
    )
    if bar is not None:
        bar.end()
    echo_notes(result.notes)
    if as_json:
        click.echo(json.dumps(_result_json(result), indent=2))
        return
    if not quiet:
        click.echo(format_report(result.parity))
    size = result.path.stat().st_size / 1e6
    points = len(result.parity.points)
    click.echo(
        f"wrote {result.path} ({size:.2f} MB) and {result.manifest_path.name}: "
        f"parity passed at {points} shape points "
        f"(export {result.seconds['export']:.1f}s, parity {result.seconds['parity']:.1f}s)"
    )


def _report_split(result: SplitResult, as_json: bool, quiet: bool) -> None:
    from mmexport.export.parity import format_report

    echo_notes(result.notes)
    parts = result.composition.parts
    if as_json:
        payload = {
            "folder": str(result.folder),
            "composition": str(result.folder / "composition.json"),
            "parts": {p.name: {"file": p.file, "sha256": p.sha256} for p in parts},
            "notes": result.notes,
            "seconds": result.seconds,
            "parity": {name: r.parity.to_dict() for name, r in result.parts.items()},
            "composed_parity": result.parity.to_dict(),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    if not quiet:
        click.echo(format_report(result.parity))
    absent = [f"{p.name} ({p.absent.kind})" for p in parts if p.absent is not None]
    click.echo(
        f"wrote {result.folder}/: {', '.join(p.file for p in parts)} and composition.json; each part passed "
        f"its parity gate and the composition matched the model at {len(result.parity.points)} checks "
        f"(parts {result.seconds['parts']:.1f}s, composed {result.seconds['composed_parity']:.1f}s); "
        f"may be absent: {', '.join(absent) or 'none'}"
    )


def _result_json(result: ToOnnxResult) -> dict[str, Any]:
    return {
        "path": str(result.path),
        "manifest": str(result.manifest_path),
        "sha256": result.manifest.sha256,
        "simplified": result.simplified,
        "notes": result.notes,
        "seconds": result.seconds,
        "parity": result.parity.to_dict(),
    }


__all__ = ["to_onnx_cmd"]
