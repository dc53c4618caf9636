"""The ``mmexport`` command line: parse arguments, call the library, render the result.

``main`` runs before anything heavy is imported: it installs the Ctrl-C handler (an interrupt
while numpy, click or torch load is one line and exit code 130, not a traceback) and refuses a
working folder that no longer exists (torch's oneMKL aborts the process on one).
"""

from __future__ import annotations

import os
import signal
import sys

EXIT_INTERRUPTED = 130


def _interrupt_while_starting(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def check_working_folder() -> str | None:
    """Why the current folder cannot be worked in (it was deleted, or cannot be read), or None."""
    try:
        os.getcwd()
    except FileNotFoundError:
        return "the current folder no longer exists (it was removed after this shell entered it)"
    except OSError as e:
        return f"the current folder cannot be read ({e.strerror or e})"
    return None


def main() -> None:
    """The ``mmexport`` command."""
    try:
        signal.signal(signal.SIGINT, _interrupt_while_starting)
        problem = check_working_folder()
        if problem is not None:
            sys.stderr.write(f"error: {problem}; cd to an existing folder and run it again\n")
            sys.exit(1)
        from mmexport.cli import app

        app.main()  # a command's own Ctrl-C is its group's to report; this one came before it
    except KeyboardInterrupt:
        sys.stderr.write("interrupted before the command started; nothing was written\n")
        sys.exit(EXIT_INTERRUPTED)


__all__ = ["main"]
