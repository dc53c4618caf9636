"""Manifests are untrusted input: every damaged, hostile or foreign one is an ``ArtifactError``
naming the file, never a traceback from json, RecursionError or a wrong type found later."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mmexport.errors import ArtifactError
from mmexport.manifest import MAX_MANIFEST_BYTES, read_manifest
from runtime.onnx_models import write_tiny


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
