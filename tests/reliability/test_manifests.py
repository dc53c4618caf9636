"""Manifests are untrusted input: every damaged, hostile or foreign one is an ``ArtifactError``
naming the file, never a traceback from json, RecursionError or a wrong type found later."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmexport.core.errors import ArtifactError, MmexportError
from mmexport.core.manifest import MAX_MANIFEST_BYTES, Producer, Source, read_manifest
from mmexport.runtime import Session
from reliability import budget
from runtime.onnx_models import feeds, write_tiny


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return write_tiny(tmp_path)


def rewrite(artifact: Path, change: Callable[[dict[str, Any]], object]) -> None:
    path = Path(f"{artifact}.json")
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_folder_in_place_of_the_manifest(artifact: Path) -> None:
    manifest = Path(f"{artifact}.json")
    manifest.unlink()
    manifest.mkdir()
    with pytest.raises(ArtifactError, match=r"tiny\.onnx\.json: is not a file"):
        read_manifest(artifact)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 2000 + "1" + "}" * 2000])
def test_deep_nesting_is_refused(artifact: Path, text: str) -> None:
    Path(f"{artifact}.json").write_text(text)
    with pytest.raises(ArtifactError, match="nested deeper than"):
        read_manifest(artifact)


def test_deep_nesting_inside_a_valid_manifest_is_refused(artifact: Path) -> None:
    deep: Any = 1
    for _ in range(100):
        deep = {"a": deep}
    rewrite(artifact, lambda d: d["validation"].update(deep=deep))
    with pytest.raises(ArtifactError, match="nested deeper than 32"):
        read_manifest(artifact)


def test_huge_numbers_and_non_json_constants_are_refused(artifact: Path) -> None:
    path = Path(f"{artifact}.json")
    text = path.read_text()
    path.write_text(text.replace('"max": 8', '"max": ' + "9" * 5000))
    with pytest.raises(ArtifactError, match="is not valid JSON"):
        read_manifest(artifact)
    path.write_text(text.replace('"max": 8', '"max": ' + "9" * 30))
    with pytest.raises(ArtifactError, match="integer out of range"):
        read_manifest(artifact)
    path.write_text(text.replace('"max": 8', '"max": NaN'))
    with pytest.raises(ArtifactError, match="NaN"):
        read_manifest(artifact)


def test_long_strings_are_refused(artifact: Path) -> None:
    rewrite(artifact, lambda d: d["source"].update(note="x" * ((1 << 20) + 1)))
    with pytest.raises(ArtifactError, match="string longer than"):
        read_manifest(artifact)


def test_the_size_limit_holds_for_files_that_grow(artifact: Path) -> None:
    Path(f"{artifact}.json").write_text(" " * (MAX_MANIFEST_BYTES + 1))
    with pytest.raises(ArtifactError, match="larger than 16 MiB"):
        read_manifest(artifact)


def test_duplicate_keys_are_refused(artifact: Path) -> None:
    path = Path(f"{artifact}.json")
    path.write_text(path.read_text().replace('"kind": "onnx"', '"kind": "onnx", "kind": "engine"', 1))
    with pytest.raises(ArtifactError, match="key 'kind' appears twice"):
        read_manifest(artifact)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("kind", 5, "'kind' must be a non-empty string, got 5"),
        ("kind", "", "'kind' must be a non-empty string"),
        ("precision", {"a": 1}, "'precision' must be a non-empty string"),
        ("sha256", 5, "'sha256' must be 64 lowercase hex digits, got 5"),
        ("sha256", "0" * 63, "'sha256' must be 64 lowercase hex digits"),
        ("sha256", "", "'sha256' must be 64 lowercase hex digits"),
        ("artifact", "../../etc/passwd", "'artifact' must be a file name without a folder"),
        ("artifact", "..", "'artifact' must be a file name without a folder"),
        ("artifact", None, "'artifact' must be a file name"),
        ("created", 1, "'created' must be a string"),
        ("format_version", True, "format version True"),
        ("format_version", 1.0, "format version 1.0"),
        ("source", [], "'source' must be an object"),
        ("spec", "spec.json", "holds an invalid spec"),
        ("colour", "red", "unknown key 'colour'"),
    ],
)
def test_every_field_has_its_type(artifact: Path, key: str, value: Any, message: str) -> None:
    rewrite(artifact, lambda d: d.update({key: value}))
    with pytest.raises(ArtifactError, match=r"tiny\.onnx\.json: .*" + re.escape(message)):
        read_manifest(artifact)


def test_a_manifest_from_a_newer_mmexport(artifact: Path) -> None:
    rewrite(artifact, lambda d: d.update(format_version=2, new_field={"x": 1}))
    with pytest.raises(
        ArtifactError, match=r"format version 2; this mmexport reads up to 1.*upgrade mmexport"
    ):
        read_manifest(artifact)


def test_the_written_manifest_reads_back(artifact: Path) -> None:
    manifest = read_manifest(artifact)
    assert manifest is not None and manifest.kind == "onnx" and len(manifest.sha256) == 64


# -- property-based: any mutation of a real manifest ------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (as a key path)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _mutate(data: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    if not path:
        return value
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if how == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif how == "delete" and isinstance(parent, list):
        parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return data


@pytest.fixture(scope="module")
def good_manifest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    artifact = write_tiny(tmp_path_factory.mktemp("manifest"))
    return artifact, json.loads(Path(f"{artifact}.json").read_text())


@budget.FUZZ
@given(data=st.data())
def test_any_mutation_reads_as_a_manifest_or_an_artifact_error(
    good_manifest: tuple[Path, dict[str, Any]], data: st.DataObject
) -> None:
    artifact, original = good_manifest
    mutated = json.loads(json.dumps(original))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(_paths(mutated)), label="at")
        how = data.draw(st.sampled_from(["replace", "delete"]), label="how")
        mutated = _mutate(mutated, path, how, data.draw(JSON, label="value"))
    text = json.dumps(mutated)
    if data.draw(st.booleans(), label="damage bytes"):
        raw = bytearray(text.encode())
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        Path(f"{artifact}.json").write_bytes(bytes(raw))
    else:
        Path(f"{artifact}.json").write_text(text)
    try:
        try:
            manifest = read_manifest(artifact)
        except ArtifactError as e:
            assert str(artifact) in str(e)
            budget.record("manifest mutations", "ArtifactError")
            return
        assert manifest is not None
        # what it accepted is well-typed: the fields every consumer reads
        assert isinstance(manifest.kind, str) and isinstance(manifest.precision, str)
        assert len(manifest.sha256) == 64
        assert isinstance(manifest.producer, Producer) and isinstance(manifest.source, Source)
        assert isinstance(manifest.producer.to_dict(), dict) and isinstance(manifest.source.to_dict(), dict)
        try:
            Session(artifact).run(feeds())
            budget.record("manifest mutations", "read, and the Session runs (a harmless change)")
        except MmexportError as e:
            budget.record("manifest mutations", f"read, then Session: {type(e).__name__}")
    finally:
        Path(f"{artifact}.json").write_text(json.dumps(original))
