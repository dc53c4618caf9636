"""What a failed torch.onnx export tells the user: the model's own line, the op torch names, the
other exporter to try, and a log file with everything torch printed (IR and graph dumps included).

torch's exporters print graph dumps straight to the process's file descriptors (TorchScript's
"Torch IR graph at exception" comes from C++), so the capture below redirects descriptors 1 and 2,
not only ``sys.stdout``. With ``--debug`` (the ``mmexport`` logger at DEBUG) nothing is captured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import sysconfig
import tempfile
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from mmexport.core.errors import ExportError

OTHER_EXPORTER = {"dynamo": "torchscript", "torchscript": "dynamo"}
_CHAIN_LIMIT = 8
_LIBRARIES = ("torch", "onnx", "onnxscript", "onnx_ir", "onnxruntime", "mmexport", "click", "pytest")
# IR dumps name source lines as "# /path/file.py:123:0"
_IR_LOCATION = re.compile(r"# (\S+\.py):(\d+):\d+")


@dataclass
class ExportLog:
    """Where torch's output of one export goes; ``path`` is None when it went to the terminal.
    ``caught`` holds the warnings raised meanwhile (none are kept with ``--debug``: they print)."""

    path: Path | None
    caught: list[warnings.WarningMessage] = field(default_factory=list)
    sink: TextIO | None = None
    """The open log file while the export runs (torch's descriptors point at it)."""

    def append(self, text: str) -> None:
        """Add ``text`` after what torch wrote (through the same file, so nothing overwrites it)."""
        if self.sink is not None and not self.sink.closed:
            self.sink.write(text)
            self.sink.flush()

    def trace_notes(self, limit: int = 3) -> list[str]:
        """TorchScript's warnings that a trace took one path of the model's code (a tensor used as
        a Python bool or number): a note per place in the model's code, at most ``limit``."""
        places: dict[str, str] = {}
        for w in self.caught:
            if w.category.__name__ == "TracerWarning" and _is_model_code(w.filename):
                first = str(w.message).split(". ")[0].strip().rstrip(".")
                places.setdefault(f"{w.filename}:{w.lineno}", first)
        return [
            f"TorchScript traced one path at {place} ({what}); the parity gate checked it at its "
            "shape points, other values may take another path"
            for place, what in list(places.items())[:limit]
        ]

    def text(self) -> str:
        if self.path is None:
            return ""
        return self.path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def captured_output() -> Iterator[ExportLog]:
    """Send torch's prints, warnings and logs (Python and C++) of the block to a temporary log file.

    The file is removed when the block succeeds and kept when it raises, so the error can name it.
    """
    if logging.getLogger("mmexport").isEnabledFor(logging.DEBUG):
        yield ExportLog(None)
        return
    fd, name = tempfile.mkstemp(prefix="mmexport-export-", suffix=".log")
    log = ExportLog(Path(name))
    torch_log = logging.getLogger("torch")
    level = torch_log.level
    torch_log.setLevel(logging.ERROR)
    ok = False
    try:
        with (
            os.fdopen(fd, "w", encoding="utf-8", errors="replace") as sink,
            _descriptors_to(sink),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            log.caught, log.sink = caught, sink
            yield log
        ok = True
    finally:
        torch_log.setLevel(level)
        if ok:
            log.path.unlink(missing_ok=True)  # type: ignore[union-attr]


@contextlib.contextmanager
def _descriptors_to(sink: TextIO) -> Iterator[None]:
    """Point descriptors 1 and 2 (and Python's sys.stdout/err) at ``sink`` for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    fileno = sink.fileno()
    saved: list[tuple[int, int]] = []
    try:
        for target in (1, 2):
            try:
                saved.append((target, os.dup(target)))
            except OSError:  # no such descriptor (e.g. a daemon): nothing of it to capture
                continue
            os.dup2(fileno, target)
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        with contextlib.suppress(Exception):
            sink.flush()
        for target, copy in saved:
            os.dup2(copy, target)
            os.close(copy)


def explain_failure(error: BaseException, *, exporter: str, log: ExportLog) -> ExportError:
    """One ExportError for a torch.onnx failure: what torch said (first line), where in the
    model's code, the op called there, the other exporter to try and the log with the rest."""
    chain = _chain(error)
    log.append("\n\n" + "".join(traceback.format_exception(error)))
    conflict = _dim_conflict(chain)
    if conflict is not None:
        message = f"a dynamic dim conflicts with the model: {conflict}"
    else:
        root = chain[-1]
        message = f"{type(root).__name__}: {_first_line(root)}"
    place = model_frame(chain)
    if place is not None:
        message += f"; at {place}"
    else:
        source = _ir_source(chain)
        if source is not None:
            message += f"; the value comes from {source}"
    return ExportError(message, hint=_hint(chain, exporter, log))


def model_frame(chain: list[BaseException]) -> str | None:
    """``file:line in function: code``, and the torch function it called, for the innermost
    frame of the model's code in the tracebacks."""
    for err in reversed(chain):
        frames = traceback.extract_tb(err.__traceback__)
        for index in range(len(frames) - 1, -1, -1):
            frame = frames[index]
            if not _is_model_code(frame.filename):
                continue
            text = f"{frame.filename}:{frame.lineno} in {frame.name}"
            if frame.line:
                text += f": {frame.line.strip()[:120]}"
            called = _torch_callee(frames[index + 1 :])
            return f"{text} (calling {called})" if called else text
    return None


def _ir_source(chain: list[BaseException]) -> str | None:
    """TorchScript fails after tracing, with no model frame; its message quotes the IR of the
    value at fault, with the source line that made it (``# file.py:123:0``)."""
    for err in chain:
        for match in _IR_LOCATION.finditer(str(err)):
            if _is_model_code(match.group(1)):
                return f"{match.group(1)}:{match.group(2)}"
    return None


def _hint(chain: list[BaseException], exporter: str, log: ExportLog) -> str:
    parts: list[str] = []
    names = {type(e).__name__ for e in chain}
    if any("DataDependent" in n for n in names):
        parts.append(
            "the model branches on, or sizes a tensor by, tensor values there: rewrite it with "
            "torch.where or fixed sizes"
        )
    other = OTHER_EXPORTER.get(exporter)
    if other is not None:
        traces = other == "torchscript"
        note = " (it traces the path the example takes; the parity gate checks it)" if traces else ""
        parts.append(f"try --exporter {other}{note}")
    if log.path is not None:
        parts.append(f"torch's full output: {log.path}")
    else:
        parts.append("torch's output is above")
    return "; ".join(parts)


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    cur: BaseException | None = error
    while cur is not None and len(chain) < _CHAIN_LIMIT and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    return chain


def _dim_conflict(chain: list[BaseException]) -> str | None:
    """dynamo's constraint violations name the dim a model specializes."""
    for err in chain:
        for line in str(err).splitlines():
            line = line.strip()
            if "Not all values of" in line or "specialized" in line:
                return line[:300]
    return None


def _first_line(e: BaseException) -> str:
    """The first line of torch's message, without the IR excerpt TorchScript appends to it."""
    text = str(e).strip()
    line = text.splitlines()[0].split("[Caused by")[0].strip().rstrip(".") if text else type(e).__name__
    return line[:300]


def _library_roots() -> tuple[str, ...]:
    """Folders whose code is not the model's: torch and the ONNX libraries, mmexport, the stdlib."""
    roots: list[str] = []
    for name in _LIBRARIES:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if file:
            roots.append(str(Path(file).parent))
    return tuple(os.path.join(r, "") for r in roots)


def _stdlib_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(os.path.join(paths[k], "") for k in ("stdlib", "platstdlib") if k in paths)


def _is_model_code(filename: str) -> bool:
    """Code outside torch, the ONNX libraries, mmexport and the standard library (installed
    packages such as transformers count: their files hold the model)."""
    if filename.startswith("<"):  # <string>, <frozen ...>, generated code
        return False
    path = os.path.abspath(filename)
    if path.startswith(_library_roots()):
        return False
    installed = "site-packages" in path or "dist-packages" in path  # a venv's lib is under stdlib
    return installed or not path.startswith(_stdlib_roots())


def _torch_callee(frames: list[traceback.FrameSummary]) -> str | None:
    """The public torch function the model's line called (e.g. torch.nn.functional.interpolate)."""
    torch_module = sys.modules.get("torch")
    file = getattr(torch_module, "__file__", None)
    if not frames or not file:
        return None
    root = Path(file).parent
    try:
        relative = Path(frames[0].filename).resolve().relative_to(root.resolve())
    except ValueError:
        return None
    parts = relative.with_suffix("").parts
    private = any(p.startswith("_") and p != "_tensor" for p in parts)
    if private or parts[0] in ("fx", "export", "onnx"):
        return None
    if parts[-1] == "_tensor":
        return f"Tensor.{frames[0].name}"
    return ".".join(("torch", *parts, frames[0].name))
