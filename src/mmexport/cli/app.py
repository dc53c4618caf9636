"""The ``mmexport`` group: shared options and the one place where errors become exit codes."""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Any

import click

from mmexport import __version__
from mmexport.cli import EXIT_INTERRUPTED
from mmexport.cli.flags import cli_message
from mmexport.cli.options import JSON_OUTPUT
from mmexport.cli.progress import is_note
from mmexport.core.disk_full import DISK_FULL, disk_full_error
from mmexport.core.errors import ArtifactError, MmexportError, ParityError, PrecisionError

MAX_ERROR_CHARS = 2000
"""An error line longer than this is cut (a value it quotes can be megabytes long)."""


class MmexportGroup(click.Group):
    """Turns an MmexportError into one line on stderr and exit code 1 (traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return _invoke_refusing_environment_errors(lambda: super(MmexportGroup, self).invoke(ctx))
        except MmexportError as e:
            if ctx.meta.get("mmexport.debug"):
                raise
            report = e.report if isinstance(e, ParityError) else None
            if report is not None:
                from mmexport.export.parity import format_report

                click.echo(format_report(report), err=True)
            precision_report = e.report if isinstance(e, PrecisionError) else None
            if precision_report is not None and hasattr(precision_report, "to_markdown"):
                click.echo(precision_report.to_markdown(), err=True)
            click.secho(f"error: {shortened(cli_message(e))}", err=True, fg="red")
            if ctx.meta.get(JSON_OUTPUT):
                failure = {"error": shortened(cli_message(e)), "type": type(e).__name__}
                if report is not None:
                    failure["parity"] = report.to_dict()
                if precision_report is not None and hasattr(precision_report, "to_dict"):
                    failure["accuracy"] = precision_report.to_dict()
                click.echo(json.dumps(failure, indent=2))
            ctx.exit(e.exit_code)
        except KeyboardInterrupt as e:
            click.echo(_interrupted(e), err=True)
            ctx.exit(EXIT_INTERRUPTED)


def _invoke_refusing_environment_errors(invoke: Any) -> Any:
    """Run the command; what the machine (not the input) refused becomes an MmexportError: a
    write that found no room (a library writing on its own, outside ``core.files``), and an
    allocation the memory could not hold."""
    try:
        return invoke()
    except OSError as e:
        if e.errno not in DISK_FULL:
            raise
        raise disk_full_error(e.filename or "an output file", e) from e
    except MemoryError as e:
        raise ArtifactError(
            "memory", f"this machine ran out of it ({e or 'MemoryError'})", hint="use smaller shapes"
        ) from e


def shortened(text: str, most: int = MAX_ERROR_CHARS) -> str:
    """``text`` cut to ``most`` characters, saying how much was left out."""
    if len(text) <= most:
        return text
    return f"{text[:most]}... ({len(text) - most} more characters)"


def _interrupted(error: KeyboardInterrupt) -> str:
    """What a Ctrl-C left on disk: one held back by ``files.uninterrupted`` arrives once the artifact
    and its manifest are in place; any other stopped the file being written, which is discarded."""
    from mmexport.core.files import InterruptedAfterWrite

    if isinstance(error, InterruptedAfterWrite):
        return "interrupted after the artifact and its manifest were written; nothing half-written was left"
    return "interrupted; the file being written was discarded"


@click.group(cls=MmexportGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmexport")
@click.option("--debug", is_flag=True, help="Show tracebacks and the exporters' own logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Take PyTorch multimodal models to the edge: ONNX with per-modality dynamic dims,
    checked against PyTorch, ready for FP16/INT8 and TensorRT.

    Start with `mmexport to-onnx -o model.onnx` (the built-in default model) and
    `mmexport inspect model.onnx`.
    """
    ctx.meta["mmexport.debug"] = debug
    root = logging.getLogger()
    if not root.handlers:  # as logging.basicConfig, but the stages' notes are show_notes' to print
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
        handler.addFilter(lambda record: not is_note(record))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("mmexport").setLevel(logging.DEBUG if debug else logging.WARNING)
    for library in ("onnxscript", "torch.onnx", "onnx_ir"):  # exporter chatter: only with --debug
        logging.getLogger(library).setLevel(logging.DEBUG if debug else logging.ERROR)


def register() -> None:
    from mmexport.cli import export_cmd, info_cmd

    cli.add_command(export_cmd.to_onnx_cmd)
    cli.add_command(info_cmd.inspect_cmd)
    cli.add_command(info_cmd.models_cmd)
    from mmexport.cli import bench_cmd, run_cmd

    cli.add_command(run_cmd.run_cmd)
    cli.add_command(bench_cmd.bench_cmd)
    from mmexport.cli import precision_cmd

    cli.add_command(precision_cmd.fp16_cmd)
    cli.add_command(precision_cmd.calibrate_cmd)
    from mmexport.cli import accuracy_cmd

    cli.add_command(accuracy_cmd.accuracy_cmd)
    from mmexport.cli import pipeline_cmd

    cli.add_command(pipeline_cmd.pipeline_cmd)
    from mmexport.cli import build_cmd

    cli.add_command(build_cmd.build_cmd)
    from mmexport.cli import check_cmd, doctor_cmd

    cli.add_command(check_cmd.check_cmd)
    cli.add_command(doctor_cmd.doctor_cmd)
    from mmexport.cli import triton_cmd

    cli.add_command(triton_cmd.triton_cmd)
    from mmexport.cli import bundle_cmd

    cli.add_command(bundle_cmd.bundle_cmd)
    cli.add_command(bundle_cmd.unbundle_cmd)


register()


def _on_interrupt(_signum: int, _frame: object) -> None:
    """Ctrl-C: remember it (libraries such as torch's exporter can swallow the exception), then
    raise it as usual."""
    from mmexport.core.files import INTERRUPTED

    INTERRUPTED.set()
    raise KeyboardInterrupt


def main() -> None:
    """The command line, once ``mmexport.cli.main`` has checked the working folder."""
    signal.signal(signal.SIGINT, _on_interrupt)
    cli(prog_name="mmexport")
