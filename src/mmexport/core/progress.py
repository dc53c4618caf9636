"""How long work reports itself: counts through one ``Progress`` callback, words through ``logging``.

A loop over samples calls ``progress(done, total)``; a stage says what it is doing with
``logging.getLogger(__name__).info(...)`` (the CLI prints those notes; a library user configures
logging as usual). ``nested()`` marks the notes of a step inside a larger one, so that a printer
can indent them under it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Progress(Protocol):
    """Called as work advances: ``done`` items so far, of ``total`` when it is known."""

    def __call__(self, done: int, total: int | None = None, /) -> None: ...


def no_progress(done: int, total: int | None = None, /) -> None:
    """The default ``Progress``: nobody is watching."""


_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("mmexport_note_depth", default=0)


@contextmanager
def nested() -> Iterator[None]:
    """Notes logged inside belong to a step of the notes around (a part of a split export, a stage
    of the pipeline): printers show them one level deeper."""
    token = _DEPTH.set(_DEPTH.get() + 1)
    try:
        yield
    finally:
        _DEPTH.reset(token)


def depth() -> int:
    """How many ``nested()`` blocks the current note is inside."""
    return _DEPTH.get()


__all__ = ["Progress", "depth", "nested", "no_progress"]
