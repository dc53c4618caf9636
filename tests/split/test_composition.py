"""Composition manifests that are damaged or inconsistent are refused with the field named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmexport.core.errors import ArtifactError
from mmexport.split import SplitSession


def _edit(folder: Path, change) -> None:
    path = folder / "composition.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _part(data: dict, name: str) -> dict:
    return next(p for p in data["parts"] if p["name"] == name)


def test_missing_part_file(fusion_copy):
    (fusion_copy / "audio.onnx").unlink()
    with pytest.raises(ArtifactError, match=r"'parts\[2\]\.file': part 'audio' file 'audio.onnx' is missing"):
        SplitSession(fusion_copy)


def test_sha_mismatch(fusion_copy):
    with open(fusion_copy / "text.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError, match=r"'parts\[1\]\.sha256'.*does not match its sha256"):
        SplitSession(fusion_copy)


def test_wire_to_an_unknown_part_output(fusion_copy):
    _edit(
        fusion_copy, lambda d: _part(d, "fuse")["inputs"].update(summary={"part": "text", "output": "nope"})
    )
    with pytest.raises(
        ArtifactError, match=r"'parts\[3\]\.inputs\.summary' reads output 'nope' of part 'text'"
    ):
        SplitSession(fusion_copy)


def test_wire_to_an_unknown_model_input(fusion_copy):
    _edit(fusion_copy, lambda d: _part(d, "image")["inputs"].update(image={"input": "camera"}))
    with pytest.raises(ArtifactError, match="reads model input 'camera', which the spec does not declare"):
        SplitSession(fusion_copy)


def test_wire_naming_an_input_the_part_does_not_take(fusion_copy):
    def rename(d: dict) -> None:
        inputs = _part(d, "fuse")["inputs"]
        inputs["summry"] = inputs.pop("summary")

    _edit(fusion_copy, rename)
    with pytest.raises(
        ArtifactError, match=r"'parts\[3\]\.inputs\.summry': 'summry' is not an input of fuse.onnx"
    ):
        SplitSession(fusion_copy)


def test_newer_format_version(fusion_copy):
    _edit(fusion_copy, lambda d: d.update(format_version=2))
    with pytest.raises(
        ArtifactError, match=r"composition format version 2; this mmexport reads up to 1 \(upgrade mmexport\)"
    ):
        SplitSession(fusion_copy)


@pytest.mark.parametrize("version", [0, -1, True, 1.0, "1"])
def test_format_version_that_no_mmexport_wrote(fusion_copy, version):
    _edit(fusion_copy, lambda d: d.update(format_version=version))
    with pytest.raises(ArtifactError, match=r"format version .*; this mmexport reads up to 1") as info:
        SplitSession(fusion_copy)
    assert "upgrade" not in str(info.value)


def test_a_folder_in_place_of_composition_json(fusion_copy):
    (fusion_copy / "composition.json").unlink()
    (fusion_copy / "composition.json").mkdir()
    with pytest.raises(
        ArtifactError, match=r"composition\.json: is not a file; an mmexport composition manifest is a JSON"
    ):
        SplitSession(fusion_copy)


def test_cycle(fusion_copy):
    _edit(fusion_copy, lambda d: _part(d, "text")["inputs"].update(loop={"part": "fuse", "output": "logits"}))
    with pytest.raises(ArtifactError, match="cycle through part"):
        SplitSession(fusion_copy)


def test_masked_part_without_a_flag(fusion_copy):
    _edit(fusion_copy, lambda d: _part(d, "fuse")["inputs"].pop("audio_present"))
    with pytest.raises(ArtifactError, match=r"'parts\[2\]\.absent'.*no part reads its flag"):
        SplitSession(fusion_copy)


def test_not_a_split_folder(tmp_path):
    with pytest.raises(ArtifactError, match=r"composition\.json: does not exist"):
        SplitSession(tmp_path)


def test_a_model_file_is_not_a_split_folder(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"\x08\x07")  # any bytes: the suffix says what it is
    with pytest.raises(ArtifactError, match=r"model\.onnx: is a model file, not a split export folder"):
        SplitSession(model)


@pytest.mark.parametrize(
    "file", ["../text.onnx", "/tmp/text.onnx", "sub/text.onnx", "..", ".", "", "a\\b.onnx"]
)
def test_part_file_must_be_a_file_name_in_the_folder(fusion_copy, file):
    """A composition may not make the runtime load a file outside its folder."""
    outside = fusion_copy.parent / "text.onnx"
    outside.write_bytes((fusion_copy / "text.onnx").read_bytes())
    _edit(fusion_copy, lambda d: _part(d, "text").update(file=file))
    with pytest.raises(ArtifactError, match=r"field 'parts\[1\]\.file' must be a file name without a folder"):
        SplitSession(fusion_copy)


def _raw(folder: Path, replace: tuple[str, str]) -> None:
    path = folder / "composition.json"
    text = json.dumps(json.loads(path.read_text()))
    assert replace[0] in text
    path.write_text(text.replace(*replace, 1))


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (('"format_version": 1', '"format_version": 1, "x": 1' + "0" * 30), "integer out of range"),
        (('"format_version": 1', '"format_version": 1' + "0" * 5000), "not valid JSON.*digits"),
        (('"format_version": 1', '"format_version": 1, "format_version": 1'), "appears twice"),
        (
            ('"format_version": 1', '"format_version": 1, "x": ' + "[" * 50000 + "]" * 50000),
            "nested deeper than 32 levels; not an mmexport composition manifest",
        ),
        (('"format_version": 1', '"format_version": 1, "x": NaN'), "not valid JSON"),
    ],
    ids=["huge-integer", "5000-digits", "duplicate-key", "deep-nesting", "nan"],
)
def test_damaged_json_is_an_artifact_error(fusion_copy, replace, message):
    _raw(fusion_copy, replace)
    with pytest.raises(ArtifactError, match=message):
        SplitSession(fusion_copy)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(source=[1, 2]), "'source' must be a JSON object"),
        (lambda d: d.update(producer=5), "'producer' must be a JSON object"),
        (lambda d: d.update(validation="ok"), "'validation' must be a JSON object"),
        (lambda d: d.update(created=5), "'created' must be a string"),
        (lambda d: d.update(extra=1), "unknown field 'extra'"),
        (lambda d: _part(d, "text").update(extra=1), r"unknown field 'parts\[1\]\.extra'"),
        (lambda d: _part(d, "text").update(precision="int3"), r"'parts\[1\]\.precision' is 'int3'"),
        (lambda d: _part(d, "text").update(sha256="abc"), r"'parts\[1\]\.sha256' must be 64"),
        (lambda d: _part(d, "text").update(outputs=["a", "a"]), r"'parts\[1\]\.outputs' names 'a' twice"),
        (lambda d: _part(d, "image").update(absent=5), r"'parts\[0\]\.absent' must be a JSON object"),
        (
            lambda d: d["parts"].append(dict(_part(d, "text"))),
            r"'parts\[4\]\.name': part 'text' appears twice",
        ),
        (lambda d: d.update(parts={"text": 1}), "'parts' must be a list"),
        (lambda d: d["parts"].insert(0, "text"), r"'parts\[0\]' must be a JSON object"),
        (lambda d: _part(d, "text").update(inputs=[]), r"'parts\[1\]\.inputs' must be a JSON object"),
        (lambda d: d.pop("spec"), "field 'spec' is missing"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_wrong_field_types_are_artifact_errors_naming_the_field(fusion_copy, change, field):
    _edit(fusion_copy, change)
    with pytest.raises(ArtifactError, match=field):
        SplitSession(fusion_copy)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"dtype": "object", "shape": [1], "data": [None]}, "dtype 'object'"),
        ({"dtype": "float32", "shape": [-1], "data": [1.0, 2.0]}, r"shape \[-1\]"),
        ({"dtype": "float32", "shape": [2], "data": [1.0]}, "of matching size"),
        ({"dtype": "float32", "shape": [1], "data": ["a"]}, "of matching size"),
        ([1.0], "of matching size"),
    ],
)
def test_constant_absence_values_are_checked(seed_split, tmp_path, value, problem):
    import shutil

    folder = Path(shutil.copytree(seed_split.folder, tmp_path / "seed"))
    _edit(folder, lambda d: _part(d, "image")["absent"]["values"].update(image_feature=value))
    with pytest.raises(ArtifactError, match=rf"'parts\[0\]\.absent\.values\.image_feature'.*{problem}"):
        SplitSession(folder)


def test_oversized_file_is_refused_before_parsing(fusion_copy):
    path = fusion_copy / "composition.json"
    path.write_bytes(path.read_bytes() + b" " * (16 << 20))
    with pytest.raises(ArtifactError, match="larger than 16 MiB"):
        SplitSession(fusion_copy)


def test_null_embedding_that_does_not_fit_the_reading_part_is_refused_at_load(seed_split, tmp_path):
    import shutil

    folder = Path(shutil.copytree(seed_split.folder, tmp_path / "seed"))
    value = {"dtype": "float32", "shape": [2, 32], "data": [0.0] * 64}
    _edit(folder, lambda d: _part(d, "image")["absent"]["values"].update(image_feature=value))
    with pytest.raises(
        ArtifactError,
        match=r"'parts\[0\]\.absent\.values\.image_feature': float32 \[2, 32\] does not fit input "
        r"'image_feature' of fuse\.onnx \(float32 \[batch, 64\]\)",
    ):
        SplitSession(folder)
