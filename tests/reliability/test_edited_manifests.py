"""Manifests edited by hand (or by another tool): ``inspect`` reads or refuses any of them in one
line, and every stage that loads an artifact refuses an edited spec the way ``Session`` does."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from mmexport.cli.app import cli
from mmexport.core.errors import ArtifactError
from mmexport.runtime import Session
from reliability import budget
from runtime.onnx_models import write_tiny

# A parity section as the export gate writes it, so that its fields are there to be damaged.
PARITY = {
    "provider": "CPUExecutionProvider",
    "passed": True,
    "rows": [
        {"point": "opt", "output": "logits", "max_abs": 1e-6, "atol": 1e-4, "passed": True},
        {"point": "min", "output": "logits", "max_abs": 2e-6, "atol": 1e-4, "passed": True},
    ],
}
WRONG = [5, -1, 1.5, "x", "1", [], [1], {}, {"a": 1}, None, True]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = write_tiny(tmp_path_factory.mktemp("edited"))
    manifest = Path(f"{path}.json")
    data = json.loads(manifest.read_text())
    data["validation"] = {"parity": PARITY}
    manifest.write_text(json.dumps(data))
    return path, data


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _inspect(path: Path, data: dict[str, Any], *args: str) -> Any:
    Path(f"{path}.json").write_text(json.dumps(data))
    return CliRunner().invoke(cli, ["inspect", str(path), *args])


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("validation", "parity", "passed"), 5, "'validation.parity.passed' must be true or false, got 5"),
        (("validation", "parity", "passed"), [], "'validation.parity.passed' must be true or false"),
        (
            ("validation", "parity", "rows", 0, "point"),
            5,
            "'validation.parity.rows' must be a list of objects",
        ),
        (("validation", "parity", "rows"), "opt", "'validation.parity.rows' must be a list"),
        (("validation", "parity"), 5, "'validation.parity' must be an object, got 5"),
        (("producer",), [], "'producer' must be an object, got []"),
        (("spec", "inputs"), 5, "'inputs' must be a non-empty list"),
        (("spec", "dims", "batch", "min"), "1", "min must be an integer >= 1, got '1'"),
    ],
)
def test_inspect_refuses_a_wrong_type_in_one_line(
    pristine: tuple[Path, dict[str, Any]], where: tuple[Any, ...], value: Any, message: str
) -> None:
    path, data = pristine
    edited = copy.deepcopy(data)
    parent = edited
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = value
    for args in ((), ("--json",)):
        result = _inspect(path, edited, *args)
        assert result.exit_code == 1, result.output
        assert not isinstance(result.exception, (KeyError, TypeError)), result.exception
        assert message in result.output


@given(data=st.data())
@budget.FUZZ
def test_inspect_of_any_retyped_field_is_read_or_one_error(
    pristine: tuple[Path, dict[str, Any]], data: st.DataObject
) -> None:
    """Any field of a real manifest replaced by a value of another type: ``inspect`` (text and
    --json) prints the artifact or exits 1 with one ``error:`` line; never a traceback."""
    path, original = pristine
    where = data.draw(st.sampled_from(_paths(original)))
    value = data.draw(st.sampled_from(WRONG))
    edited = copy.deepcopy(original)
    parent: Any = edited
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = value
    for args in ((), ("--json",)):
        result = _inspect(path, edited, *args)
        assert result.exit_code in (0, 1), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        if result.exit_code == 1:
            assert [line.startswith("error: ") for line in result.output.splitlines()].count(True) == 1
    budget.record("manifest fields retyped", f"inspect: {'read' if result.exit_code == 0 else 'one error'}")


SPEC_EDITS = {
    "dtype": lambda d: d["spec"]["inputs"][1].update(dtype="float32", range=None),
    "fixed axis": lambda d: d["spec"]["inputs"][0].update(shape=["batch", 4, "height", "width"]),
    "rank": lambda d: d["spec"]["inputs"][0].update(shape=["batch", 3, "height"]),
    "name": lambda d: d["spec"]["inputs"][1].update(name="words"),
}


def _edited_copy(tmp_path: Path, edit: Any) -> Path:
    path = write_tiny(tmp_path)
    manifest = Path(f"{path}.json")
    data = json.loads(manifest.read_text())
    edit(data)
    if data["spec"]["inputs"][1].get("range", 0) is None:
        del data["spec"]["inputs"][1]["range"]
    manifest.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("edit", sorted(SPEC_EDITS))
def test_every_stage_refuses_an_edited_spec_as_session_does(tmp_path: Path, edit: str) -> None:
    path = _edited_copy(tmp_path, SPEC_EDITS[edit])
    with pytest.raises(ArtifactError) as session_error:
        Session(path)
    expected = f"error: {session_error.value}"
    for args in (
        ["fp16", str(path), "-o", str(tmp_path / "t16.onnx")],
        ["calibrate", str(path), "-o", str(tmp_path / "t8.onnx"), "--samples", "4"],
        ["accuracy", str(path), str(path), "--samples", "4"],
        ["run", str(path)],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, (args[0], result.output)
        assert expected in result.output.splitlines(), (args[0], result.output)
        budget.record(f"edited spec/{edit}", f"{args[0]}: the same ArtifactError as Session")
    assert not (tmp_path / "t16.onnx").exists() and not (tmp_path / "t8.onnx").exists()


def test_a_label_list_of_another_length_is_refused_at_load(tmp_path: Path) -> None:
    """Three labels for four classes would otherwise mislabel predictions or call good data bad."""
    path = _edited_copy(tmp_path, lambda d: d["spec"]["outputs"][0].update(labels=["a", "b", "c"]))
    for args in (["fp16", str(path), "-o", str(tmp_path / "t16.onnx")], ["accuracy", str(path), str(path)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert "output 'logits' has 4 classes in the graph but the manifest lists 3 labels" in result.output
