"""Progress on stderr: the library's notes (INFO records of the ``mmexport`` loggers) as indented
lines, and long loops as done/total with rate and ETA. Nothing with ``-q``."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import click

from mmexport.core.progress import depth

LIBRARY_LOGGER = "mmexport"
_OPEN_LINES: list[Counter] = []  # a counter's line rewritten in place on a terminal, not yet ended


def is_note(record: logging.LogRecord) -> bool:
    """A stage's note: INFO from an mmexport module (shown by ``show_notes``, not as a log line)."""
    return record.levelno == logging.INFO and record.name.split(".", 1)[0] == LIBRARY_LOGGER


class NotePrinter(logging.Handler):
    """Prints notes on stderr as the commands always have: under the command's lines, one indent
    deeper for each ``nested()`` step."""

    def __init__(self, indent: str) -> None:
        super().__init__(logging.INFO)
        self.indent = indent
        self.addFilter(is_note)

    def emit(self, record: logging.LogRecord) -> None:
        for line in list(_OPEN_LINES):  # a note starts on a line of its own
            line.end()
        click.echo(f"{self.indent}{'  ' * depth()}{record.getMessage()}", err=True)


def show_notes(quiet: bool, *, indent: str = "  ") -> None:
    """Print the library's notes for the rest of the current command (nothing with -q)."""
    if quiet:
        return
    logger = logging.getLogger(LIBRARY_LOGGER)
    printer, level = NotePrinter(indent), logger.level
    logger.addHandler(printer)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)

    def stop() -> None:
        logger.removeHandler(printer)
        logger.setLevel(level)

    click.get_current_context().call_on_close(stop)


class Counter:
    """A ``Progress`` for a long loop: ``label: done/total unit, rate, ETA``. On a terminal one line
    rewritten in place (ended when the loop completes, or by ``end()``); otherwise a line per tenth."""

    def __init__(
        self,
        label: str,
        *,
        unit: str = "samples",
        indent: str = "  ",
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.unit, self.indent, self.clock = label, unit, indent, clock
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.first: tuple[float, int] | None = None  # the rate counts from the first call, not from loading
        self.last_tenth = -1
        self.open_line = False

    def __call__(self, done: int, total: int | None = None, /) -> None:
        now = self.clock()
        self.first = self.first or (now, done)
        tenth = done * 10 // total if total else done
        if self.tty:
            click.echo(f"\r{self.line(done, total, now)}", err=True, nl=False)
            if not self.open_line:
                self.open_line = True
                _OPEN_LINES.append(self)
            if total is not None and done >= total:
                self.end()
        elif tenth != self.last_tenth:
            click.echo(self.line(done, total, now), err=True)
        self.last_tenth = tenth

    def phase(self, label: str) -> None:
        """A new loop of the same command starts (scanning, then checking...): a line of its own,
        named ``label``, its rate counted afresh."""
        self.end()
        self.label, self.first, self.last_tenth = label, None, -1

    def line(self, done: int, total: int | None, now: float) -> str:
        """``  calibrating: 128/512 samples, 410/s, about 1 s left``."""
        text = f"{self.indent}{self.label}: {done}/{total or '?'} {self.unit}"
        started, done_then = self.first or (now, done)
        if now > started and done > done_then:
            rate = (done - done_then) / (now - started)
            text += f", {rate:.3g}/s"
            if total is not None and done < total:
                left = (total - done) / rate
                text += f", about {left:.0f} s left" if left >= 1 else ", under 1 s left"
        return text

    def end(self) -> None:
        """End the line a terminal shows, if one is open (a loop may stop before its total)."""
        if self.open_line:
            click.echo("", err=True)
            self.open_line = False
            _OPEN_LINES.remove(self)


def counter(label: str, quiet: bool, *, indent: str = "  ") -> Counter | None:
    """A progress counter for a long loop, or None with -q."""
    return None if quiet else Counter(label, indent=indent)
