"""No stage opens onnxruntime itself: outside ``mmexport.runtime`` the package may read
``onnxruntime.__version__`` (for manifests) and use its converters (``onnxruntime.transformers``),
but never makes a session or its options; sessions come from the runtime."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "mmexport"


SESSION_NAMES = {"InferenceSession", "SessionOptions"}


def uses_of_onnxruntime(source: str) -> list[str]:
    """What a module does with onnxruntime that only the runtime may do, as ``line: text``: name a
    session or its options, or use ``import onnxruntime`` for more than ``__version__``."""
    tree = ast.parse(source)
    aliases: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "onnxruntime"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "onnxruntime":
            found += [f"{node.lineno}: from {node.module} import {a.name}" for a in node.names
                      if a.name in SESSION_NAMES]  # fmt: skip
        elif isinstance(node, (ast.Name, ast.Attribute)):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in SESSION_NAMES:
                found.append(f"{node.lineno}: {name}")
    versions = {
        id(n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and n.attr == "__version__" and isinstance(n.value, ast.Name)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in aliases and id(node) not in versions:
            found.append(f"{node.lineno}: {node.id} used beyond __version__")
    return found


def test_the_scan_finds_a_stage_that_opens_onnxruntime():
    opens = "import onnxruntime as ort\n\ndef f(p):\n    return ort.InferenceSession(p)\n"
    assert uses_of_onnxruntime(opens) == ["4: InferenceSession", "4: ort used beyond __version__"]
    assert uses_of_onnxruntime("from onnxruntime import InferenceSession\n") == [
        "1: from onnxruntime import InferenceSession"
    ]
    assert uses_of_onnxruntime("import onnxruntime\nv = onnxruntime.__version__\n") == []
    assert uses_of_onnxruntime("from onnxruntime.transformers import float16\n") == []


def test_no_module_outside_the_runtime_opens_onnxruntime():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "runtime":
            continue
        found = uses_of_onnxruntime(path.read_text(encoding="utf-8"))
        if found:
            offenders[str(path.relative_to(PACKAGE))] = found
    assert offenders == {}, "ask the runtime (runtime/backends/onnxrt) for a runner or a session"
