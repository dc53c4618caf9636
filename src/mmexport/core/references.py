"""Import the Python code a user names: ``path/to/file.py:name`` or ``package.module:name``.

Importing runs the user's code, as ``python file.py`` would: only name files you trust. Shared by
model factories (``mmexport.export.loader``) and data functions (``make_feeds`` in
``mmexport.data.sources``); torch-free, so the runtime side can use it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


class ReferenceNotFound(Exception):
    """Why a reference could not be resolved; callers turn it into their own MmexportError."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)


def is_file_source(source: str) -> bool:
    return source.endswith(".py") or "/" in source or source.startswith(".")


def import_source(source: str, *, prefix: str = "_mmexport_user_") -> ModuleType:
    """The module of ``source``: a .py file (its folder becomes importable, like ``python
    file.py``) or a dotted module (the current folder is importable, like ``python -m``)."""
    if is_file_source(source):
        return _import_file(Path(source), f"{prefix}{Path(source).stem}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as e:
        raise ReferenceNotFound(f"module {source!r} cannot be found ({e})") from e
    except SystemExit as e:
        raise exited(f"importing {source!r}", e) from e
    except Exception as e:
        raise ReferenceNotFound(f"importing {source!r} raised {type(e).__name__}: {e}") from e


SCRIPT_HINT = 'is it a script? keep its top-level code under `if __name__ == "__main__":`'


def exited(what: str, error: SystemExit, *, hint: str = SCRIPT_HINT) -> ReferenceNotFound:
    """The user's code ended the process (``sys.exit``, argparse in a script): an error of ours,
    never the user's exit status (0 would pass for success)."""
    return ReferenceNotFound(
        f"{what} called sys.exit({'' if error.code is None else repr(error.code)})", hint=hint
    )


def _import_file(path: Path, name: str) -> ModuleType:
    if not path.is_file():
        raise ReferenceNotFound(f"file {str(path)!r} does not exist")
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ReferenceNotFound(f"file {str(path)!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as e:
        sys.modules.pop(name, None)
        raise exited(f"importing {str(path)!r}", e) from e
    except Exception as e:
        sys.modules.pop(name, None)
        raise ReferenceNotFound(f"importing {str(path)!r} raised {type(e).__name__}: {e}") from e
    return module


def get_attribute(module: ModuleType, attr: str, *, what: str = "function") -> Any:
    """``module.attr``, or why not with the callables that are there."""
    if not attr:
        raise ReferenceNotFound(f"names no {what} after ':'")
    if not hasattr(module, attr):
        public = [n for n in vars(module) if callable(getattr(module, n)) and not n.startswith("_")]
        raise ReferenceNotFound(
            f"has no attribute {attr!r}", hint=f"callables there: {', '.join(public) or 'none'}"
        )
    return getattr(module, attr)
