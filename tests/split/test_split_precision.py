"""Per-part precision of a split folder: variants made on upstream-produced data, recorded, runnable."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli
from mmexport.core.errors import InputError
from mmexport.core.files import sha256_file
from mmexport.core.manifest import read_manifest
from mmexport.precision.stages import CalibrationConfig, Fp16Config
from mmexport.split import SplitSession
from mmexport.split.composition import read_composition
from mmexport.split.precision import parse_parts, split_precision

from .conftest import narrow_spec


def test_per_part_precisions_are_recorded_and_run(fusion_split, tmp_path):
    choices = {"image": "int8", "text": "fp16", "audio": "fp32", "fuse": "int8"}
    result = split_precision(
        fusion_split.folder,
        tmp_path / "mixed",
        choices,
        eval_samples=16,
        fp16=Fp16Config(samples=16),
        calibration=CalibrationConfig(samples=16, sensitivity=False),
    )
    composition = read_composition(tmp_path / "mixed")
    assert composition.precisions == choices
    files = {p.name: p.file for p in composition.parts}
    assert files == {
        "image": "image.int8.onnx",
        "text": "text.fp16.onnx",
        "audio": "audio.onnx",
        "fuse": "fuse.int8.onnx",
    }
    assert (tmp_path / "mixed" / "image.int8.calib").is_file()
    for part in composition.parts:
        manifest = read_manifest(tmp_path / "mixed" / part.file)
        assert manifest.precision == part.precision
        assert manifest.sha256 == part.sha256 == sha256_file(tmp_path / "mixed" / part.file)
        assert manifest.artifact == part.file
    # the fusion part was calibrated on what the FP32 encoders make of the model's data
    fuse = read_manifest(tmp_path / "mixed" / "fuse.int8.onnx")
    assert "part 'fuse' inputs from synthetic (fusion, calibration split" in fuse.producer.details["data"]
    assert set(fuse.producer.details["shape_coverage"]) >= {"image_tokens_1", "audio_tokens_1"}
    assert result.agreement is not None and result.agreement["samples"] == 16
    assert composition.validation["composed_agreement"]["top1_agreement"] >= 0.8
    spec = narrow_spec("fusion")
    feed = spec.sample_feed(spec.point("opt"), seed=1)
    with SplitSession(tmp_path / "mixed") as variant, SplitSession(fusion_split.folder) as fp32:
        a, b = variant.run(feed)["logits"], fp32.run(feed)["logits"]
    assert a.shape == b.shape and not np.array_equal(a, b)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.95


def test_parse_parts(fusion_split):
    composition = read_composition(fusion_split.folder)
    assert parse_parts("text=fp16, fuse=fp32", composition, "int8") == {
        "image": "int8",
        "text": "fp16",
        "audio": "int8",
        "fuse": "fp32",
    }
    assert parse_parts(None, composition, "fp16") == dict.fromkeys(["image", "text", "audio", "fuse"], "fp16")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("txt=fp16", r"^--parts 'txt=fp16': unknown part 'txt' \(parts: image, text, audio, fuse\)$"),
        ("text=int4", r"^--parts 'text=int4': unknown precision 'int4' \(precisions: fp32, fp16, int8\)$"),
        ("text", r"^--parts 'text' is not PART=PRECISION \(e\.g\. image=fp16\)$"),
        ("text=fp16,image=int8,text=fp32", r"^--parts names part 'text' twice \(text=fp16, text=fp32\)$"),
        ("=fp16", r"^--parts '=fp16': unknown part '' "),
    ],
)
def test_parse_parts_errors_say_what_is_wrong(fusion_split, text, message):
    with pytest.raises(InputError, match=message):
        parse_parts(text, read_composition(fusion_split.folder), "int8")


def test_parts_errors_are_one_line_on_the_command_line(fusion_split, tmp_path):
    args = [
        "calibrate",
        str(fusion_split.folder),
        "--parts",
        "text=fp16,text=int8",
        "-o",
        str(tmp_path / "x"),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.stderr == "error: --parts names part 'text' twice (text=fp16, text=int8)\n"
    assert not (tmp_path / "x").exists()


def test_fp16_command_on_a_split_folder(fusion_split, tmp_path):
    out = tmp_path / "half"
    args = ["fp16", str(fusion_split.folder), "--parts", "fuse=fp32", "-o", str(out)]
    result = CliRunner().invoke(cli, [*args, "--samples", "8", "--eval-samples", "0", "--json", "-q"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["precisions"] == {"image": "fp16", "text": "fp16", "audio": "fp16", "fuse": "fp32"}
    assert read_composition(out).precisions == payload["precisions"]


def test_parts_option_needs_a_split_folder(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"")
    result = CliRunner().invoke(cli, ["calibrate", str(model), "--parts", "image=int8"])
    assert result.exit_code == 2 and "--parts applies to a split folder" in result.stderr


def test_split_folder_given_as_dot_gets_a_default_output_beside_it(fusion_copy, monkeypatch):
    monkeypatch.chdir(fusion_copy)
    args = [
        "fp16",
        ".",
        "--parts",
        "image=fp32,text=fp32,audio=fp32",
        "--samples",
        "4",
        "--eval-samples",
        "0",
    ]
    result = CliRunner().invoke(cli, [*args, "-q"])
    assert result.exit_code == 0, result.output
    assert read_composition(fusion_copy.parent / "fusion-fp16").precisions["fuse"] == "fp16"


def test_spec_option_is_refused_for_a_split_folder(fusion_split, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text("{}")
    result = CliRunner().invoke(cli, ["fp16", str(fusion_split.folder), "--spec", str(spec)])
    assert result.exit_code == 2
    assert "--spec applies to an ONNX file; a split folder's spec is in its composition.json" in result.stderr


def test_parts_kept_in_fp32_keep_their_external_data(fusion_copy, tmp_path):
    """A part whose weights are in an external data file (models over 2 GiB) is copied with it."""
    import onnx

    from mmexport.core.files import sha256_file

    image = fusion_copy / "image.onnx"
    onnx.save(
        onnx.load(str(image)),
        str(image),
        save_as_external_data=True,
        location="image.onnx.data",
        size_threshold=0,
    )
    manifest = read_manifest(image)
    manifest.sha256 = sha256_file(image)
    manifest.producer.details["external_data"] = {
        "file": "image.onnx.data",
        "sha256": sha256_file(f"{image}.data"),
    }
    manifest.write(image)
    path = fusion_copy / "composition.json"
    data = json.loads(path.read_text())
    data["parts"][0]["sha256"] = manifest.sha256
    path.write_text(json.dumps(data))
    choices = dict.fromkeys(["image", "text", "audio", "fuse"], "fp32")
    split_precision(fusion_copy, tmp_path / "copy", choices, eval_samples=0)
    assert (tmp_path / "copy" / "image.onnx.data").read_bytes() == (
        fusion_copy / "image.onnx.data"
    ).read_bytes()
    spec = narrow_spec("fusion")
    feed = spec.sample_feed(spec.point("opt"), seed=1)
    with SplitSession(tmp_path / "copy") as copy, SplitSession(fusion_copy) as original:
        np.testing.assert_array_equal(copy.run(feed)["logits"], original.run(feed)["logits"])


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ({"image": "int8"}, r"choices lack part\(s\) text, audio, fuse"),
        (
            {"image": "bf16", "text": "fp32", "audio": "fp32", "fuse": "fp32"},
            "part 'image': precision 'bf16'",
        ),
        (
            {"image": "fp32", "text": "fp32", "audio": "fp32", "fuse": "fp32", "depth": "int8"},
            "unknown part 'depth'",
        ),
    ],
)
def test_split_precision_checks_its_choices_before_any_work(fusion_split, tmp_path, choices, message):
    with pytest.raises(InputError, match=message):
        split_precision(fusion_split.folder, tmp_path / "out", choices, eval_samples=0)
    assert list(tmp_path.iterdir()) == []
