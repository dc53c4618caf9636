"""``mmexport bench``: latency of one or more artifacts, side by side, measured interleaved."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mmexport.cli.artifacts import is_split_folder
from mmexport.cli.options import FILE, SessionChoice, quiet_option, session_options
from mmexport.cli.progress import show_notes

if TYPE_CHECKING:
    from mmexport.bench import BenchTarget


def _parse_shape(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[dict]:
    from mmexport.bench.cases import parse_shapes

    try:
        return [parse_shapes(v) for v in values]
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command("bench")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--warmup", type=click.FloatRange(min=0), default=0.2, show_default=True, help="Warm-up seconds."
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=3.0,
    show_default=True,
    help="Seconds of timed calls per artifact and shape.",
)
@click.option("--iterations", type=click.IntRange(1), default=None, help="Timed calls instead of --duration.")
@click.option(
    "--shape",
    "shapes",
    multiple=True,
    callback=_parse_shape,
    metavar="NAME=AxB[,NAME=CxD]",
    help="Shapes of one case (other inputs follow the shared dims, the rest is opt). Repeat for more cases.",
)
@click.option("--sweep", is_flag=True, help="Also measure the spec's min, opt and max corners.")
@click.option(
    "--batch", "batches", type=click.IntRange(1), multiple=True, help="Batch size(s), for every case."
)
@session_options
@click.option(
    "--spin/--no-spin",
    default=False,
    show_default=True,
    help="Let onnxruntime's idle worker threads busy-wait. Off: spinning threads of one artifact "
    "would slow the next one's calls in the interleaved measurement.",
)
@click.option(
    "--cuda-graph",
    is_flag=True,
    help="Replay each artifact as a CUDA graph, captured once per shape: TensorRT engines, and ONNX "
    "files with --device cuda (onnxruntime's CUDA provider; refused on the CPU).",
)
@click.option("--json", "json_path", type=FILE, help="Write the report as JSON (schema: docs/benchmarks.md).")
@click.option("--csv", "csv_path", type=FILE, help="Write one CSV row per artifact and case.")
@click.option("--markdown", "markdown_path", type=FILE, help="Write the table as Markdown.")
@click.option(
    "--plot", "plot_path", type=FILE, help="Write latency distributions as PNG (needs mmexport[plot])."
)
@click.option(
    "--trtexec",
    "show_trtexec",
    is_flag=True,
    help="Also print the equivalent trtexec lines for ONNX files measured on the CPU "
    "(always printed for TensorRT engines and providers; always in --json).",
)
@quiet_option
def bench_cmd(
    artifacts: tuple[Path, ...],
    warmup: float,
    duration: float,
    iterations: int | None,
    shapes: list[dict],
    sweep: bool,
    batches: tuple[int, ...],
    session: SessionChoice,
    spin: bool,
    cuda_graph: bool,
    json_path: Path | None,
    csv_path: Path | None,
    markdown_path: Path | None,
    plot_path: Path | None,
    show_trtexec: bool,
    quiet: bool,
) -> None:
    """Measure the latency of ARTIFACTS: p50/p90/p95/p99/max, mean, std, throughput.

    Each artifact's first call (after loading, or after a shape change) is reported apart; then
    a time-based warm-up; then timed calls, artifacts taking turns so that machine drift hits
    all alike. Shapes: the spec's opt point unless --shape, --sweep or --batch say otherwise.

    \b
    Examples:
      mmexport bench model.onnx
      mmexport bench model.onnx model.fp16.onnx model.int8.onnx --sweep --batch 1 --batch 8
      mmexport bench model.onnx --shape image=1x3x224x224 --json bench.json --plot bench.png
      mmexport bench fusion/ --sweep     # a split folder: end to end and each part, side by side
    """
    from mmexport.bench import BenchConfig, BenchTarget, benchmark, build_cases
    from mmexport.core.errors import MissingDependencyError

    if plot_path is not None:
        try:
            import matplotlib  # noqa: F401  (fail before measuring, not after)
        except ImportError:
            raise MissingDependencyError("matplotlib", "plot", "--plot (latency plots)") from None
    outputs = {json_path: "--json", csv_path: "--csv", markdown_path: "--markdown", plot_path: "--plot"}
    for path, option in outputs.items():
        if path is not None:
            check_writable(path, option)
    targets = []
    for p in artifacts:
        options = {"cuda_graph": True} if cuda_graph else None
        target = BenchTarget(path=p, spin=spin, options=options, **asdict(session))
        targets += split_targets(target) if is_split_folder(p) else [target]
    config = BenchConfig(warmup_s=warmup, duration_s=duration, iterations=iterations)
    show_notes(quiet, indent="")
    report = benchmark(targets, build_cases(shapes, sweep, batches), config)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(report.to_text(trtexec=show_trtexec))
    writers: list[tuple[Path | None, Callable[[Path], object]]] = [
        (json_path, lambda p: report.write_json(p)),
        (csv_path, report.write_csv),
        (markdown_path, report.write_markdown),
        (plot_path, report.plot),
    ]
    failed = [f for path, write in writers if path is not None and (f := _write(path, write))]
    if failed:
        from mmexport.core.errors import ArtifactError

        raise ArtifactError(", ".join(failed), "could not be written (see above); the other outputs were")


def split_targets(target: BenchTarget) -> list[BenchTarget]:
    """A split folder: the whole pipeline (end to end) and each of its parts, measured side by side."""
    from mmexport.bench import BenchTarget
    from mmexport.split import SplitSession
    from mmexport.split.parts import PartRunner

    if not isinstance(target.path, (str, Path)):
        raise TypeError("a split folder target is given by its path")
    folder = Path(target.path)
    pipe = SplitSession(
        folder,
        target.device,
        backend=target.backend,
        provider=target.provider,
        threads=target.threads,
        spin=target.spin,
        options=target.options,
    )
    name = Path(os.path.abspath(folder)).name  # "." or "x/.." name the folder itself
    out = [BenchTarget(label=f"{name}/", runner=pipe)]
    return out + [BenchTarget(label=f"{name}/{p}", runner=PartRunner(pipe, p)) for p in pipe.parts]


def check_writable(path: Path, option: str) -> None:
    """Before measuring: the output's folder exists (created if need be) and takes files."""
    from mmexport.core.errors import ArtifactError

    if path.is_dir():
        raise ArtifactError(str(path), f"is a folder; {option} takes a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArtifactError(str(path), f"{option}: cannot create its folder: {e.strerror}") from e
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ArtifactError(str(path), f"{option}: not writable here", hint="choose another path")


def _write(path: Path, write: Callable[[Path], object]) -> str | None:
    """Write one output; on failure say why on stderr and return the path, so the others still get written."""
    from mmexport.core.errors import MmexportError

    try:
        write(path)
    except MmexportError as e:  # a full disk, through the atomic writer
        click.echo(f"error: {e}", err=True)
        return str(path)
    except OSError as e:
        click.echo(f"error: {path}: cannot be written: {e.strerror or e}", err=True)
        return str(path)
    except Exception as e:  # a renderer's failure (e.g. matplotlib's) must not cost the other outputs
        click.echo(f"error: {path}: cannot be written: {type(e).__name__}: {e}", err=True)
        return str(path)
    click.echo(f"wrote {path}", err=True)
    return None


__all__ = ["bench_cmd"]
