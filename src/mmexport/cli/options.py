"""What the commands share."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

JSON_OUTPUT = "mmexport.json"
"""ctx.meta key: set when --json was given, so that an error is printed as JSON on stdout too."""


def json_option(help_text: str = "Print JSON instead of the table.") -> Callable[[F], F]:
    """``--json``: the command's result (and any error) as JSON on stdout."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta[JSON_OUTPUT] = value
        return value

    return click.option("--json", "as_json", is_flag=True, callback=remember, help=help_text)


DATA_HELP = (  # what --data / --eval-data accept
    "'synthetic' (built-in models), a folder of samples (sub-folders or index.jsonl), an .npz file "
    "or folder of them, or file.py:make_feeds (importing the file runs its code: name only files you trust)."
)


def progress_printer(quiet: bool, *, indent: str = "  ") -> Callable[[str], None]:
    """Progress lines on stderr, indented under the command's own lines; nothing with -q."""
    if quiet:
        return lambda _message: None
    return lambda message: click.echo(f"{indent}{message}", err=True)


def echo_notes(notes: Iterable[str]) -> None:
    """Warnings that did not stop the command, one ``note:`` line each on stderr."""
    for note in notes:
        click.echo(f"note: {note}", err=True)


def calibration_progress(quiet: bool) -> Callable[[int, int | None], None] | None:
    """A progress callback for calibration: one updating line on a terminal, tenths otherwise."""
    if quiet:
        return None
    tty = sys.stderr.isatty()
    state = {"last": -1}

    def show(done: int, total: int | None) -> None:
        tenth = done * 10 // total if total else done
        if tty:
            click.echo(f"\r  calibrating: {done} samples (up to {total or '?'})", err=True, nl=False)
        elif tenth != state["last"]:
            click.echo(f"  calibrating: {done} samples (up to {total or '?'})", err=True)
        state["last"] = tenth

    return show
