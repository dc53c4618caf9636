"""Nothing mmexport reads from disk is unpickled or evaluated, and code that does run the user's
code says so. A scan of the source tree keeps it that way."""

from __future__ import annotations

import ast
from pathlib import Path

from click.testing import CliRunner

from mmexport.cli.app import cli

SOURCE = Path(__file__).resolve().parents[2] / "src" / "mmexport"
UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "marshal", "shelve", "cloudpickle"}


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each call that could run code hidden in a file, or import of a pickler."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [(node.lineno, f"imports {n}") for n in names if n.split(".")[0] in UNPICKLING_MODULES]
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        if isinstance(func, ast.Name) and name in ("eval", "exec"):
            found.append((node.lineno, f"{name}()"))
        elif owner == "torch" and name == "load" and not _is_true(_keyword(node, "weights_only")):
            found.append((node.lineno, "torch.load without weights_only=True"))
        elif owner in ("np", "numpy") and name == "load":
            allow = _keyword(node, "allow_pickle")
            if not (isinstance(allow, ast.Constant) and allow.value is False):
                found.append((node.lineno, "np.load without allow_pickle=False"))
        elif owner == "yaml" and name in ("load", "load_all", "unsafe_load", "full_load"):
            found.append((node.lineno, f"yaml.{name} (use yaml.safe_load)"))
        elif name == "extractall" and _keyword(node, "filter") is None:
            found.append((node.lineno, "extractall without filter="))
        elif _is_true(_keyword(node, "shell")):
            found.append((node.lineno, "subprocess with shell=True"))
    return found


def test_the_scan_finds_what_it_looks_for() -> None:
    bad = """
import pickle
torch.load(path)
torch.load(path, weights_only=False)
np.load(path)
np.load(path, allow_pickle=True)
yaml.load(text)
tar.extractall(folder)
eval(text)
subprocess.run(cmd, shell=True)
"""
    good = """
torch.load(path, weights_only=True, map_location="cpu")
np.load(path, allow_pickle=False)
yaml.safe_load(text)
tar.extractall(folder, members=members, filter="data")
model.eval()
"""
    assert len(unsafe_calls(ast.parse(bad))) == 9
    assert unsafe_calls(ast.parse(good)) == []


def test_no_unsafe_loading_in_the_source_tree() -> None:
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 50
    found = [
        f"{path.relative_to(SOURCE.parent)}:{line}: {what}"
        for path in files
        for line, what in unsafe_calls(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    ]
    assert found == [], "\n".join(found)


def test_model_references_say_that_they_run_the_users_code() -> None:
    result = CliRunner().invoke(cli, ["to-onnx", "--help"])
    assert result.exit_code == 0
    assert "file.py:factory" in result.output and "runs its code" in " ".join(result.output.split())


def test_data_references_say_that_they_run_the_users_code() -> None:
    result = CliRunner().invoke(cli, ["calibrate", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "make_feeds" in text and ("runs its code" in text or "runs your code" in text)
