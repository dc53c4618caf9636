"""Split export: per-part ONNX files, derived dims, the composed gate, atomic writing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmexport.core.errors import ArtifactError, ExportError, SpecError
from mmexport.core.manifest import read_manifest
from mmexport.core.spec import ModelSpec
from mmexport.export import ExportConfig
from mmexport.export.parity import torch_outputs
from mmexport.models import get_builtin
from mmexport.split import SplitSession
from mmexport.split.composition import read_composition
from mmexport.split.export import to_onnx_split

from .conftest import GATE, narrow_spec


@pytest.mark.parametrize("name", ["fusion", "seed"])
def test_split_equals_monolithic_at_every_gate_point(name, request):
    result = request.getfixturevalue(f"{name}_split")
    points = result.parity.points
    assert result.parity.passed
    assert {"composed opt", "composed min", "composed max", "composed random-1"} <= set(points)
    assert all(r.max_abs is not None and r.max_abs <= 1e-4 for r in result.parity.rows)
    # beyond the gate: other random points, compared here with the runtime's public API
    spec = narrow_spec(name)
    model = get_builtin(name).build()
    with SplitSession(result.folder) as pipe:
        for k, point in enumerate(spec.random_points(3, seed=99)):
            feed = spec.sample_feed(point, seed=100 + k)
            (expected,) = torch_outputs(model, feed)
            (actual,) = pipe.run(feed).values()
            np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-3, err_msg=str(point))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fusion", "seed"])
def test_default_split_export_of_the_full_spec(name, tmp_path):
    """What `mmexport to-onnx NAME --split` does: dynamo, the built-in spec, the min/opt/max
    corners once each and every declared absence at opt."""
    result = to_onnx_split(name, tmp_path / name)
    points = result.parity.points
    assert result.parity.passed and {"composed opt", "composed min", "composed max"} <= set(points)
    assert any(p.startswith("opt, ") and p.endswith(" absent") for p in points)
    assert read_composition(tmp_path / name).producer["exporter"] == "dynamo"


def test_parts_each_passed_their_own_gate_and_are_recorded(fusion_split):
    folder = fusion_split.folder
    composition = read_composition(folder)
    assert [p.name for p in composition.parts] == ["image", "text", "audio", "fuse"]
    assert composition.levels() == [["image", "text", "audio"], ["fuse"]]
    assert composition.spec.to_dict() == narrow_spec("fusion").to_dict()
    assert composition.precisions == dict.fromkeys(["image", "text", "audio", "fuse"], "fp32")
    for part in composition.parts:
        manifest = read_manifest(folder / part.file)
        assert manifest.sha256 == part.sha256
        assert manifest.validation.parity["passed"] is True
        assert manifest.source.part == part.name
    raw = json.loads((folder / "composition.json").read_text())
    assert raw["format"] == "mmexport.split.composition" and raw["format_version"] == 1
    assert raw["validation"]["composed_parity"]["passed"] is True
    assert {p["name"]: p["absent"] for p in raw["parts"]} == {
        "image": {"kind": "mask"},
        "text": None,
        "audio": {"kind": "mask"},
        "fuse": None,
    }


def test_encoder_output_dims_are_carried_or_derived(fusion_split):
    fuse = read_manifest(fusion_split.folder / "fuse.onnx").spec
    assert fuse.input("summary").shape == ("batch", 64)  # batch carried through
    assert fuse.input("image_tokens").shape == ("batch", "image_tokens_1", 64)
    assert fuse.input("image_present").dtype == "bool"
    # image tokens: 1 pooled + one per cell of a 32x downsampled grid, over the narrowed 32..96 px
    tokens = fuse.dims["image_tokens_1"]
    assert (tokens.min, tokens.opt, tokens.max) == (1 + 1, 1 + 2 * 2, 1 + 3 * 3)
    frames = fuse.dims["audio_tokens_1"]
    assert (frames.min, frames.opt, frames.max) == (1 + 4, 1 + 10, 1 + 20)


def test_seed_declares_a_null_image_embedding(seed_split):
    image = read_composition(seed_split.folder).part("image")
    assert image.absent is not None and image.absent.kind == "constant"
    value = image.absent.values["image_feature"]
    model = get_builtin("seed").build()
    with torch.inference_mode():
        expected = model.encode_image(torch.zeros(1, 3, 128, 128))[0].numpy()
    np.testing.assert_array_equal(value, expected)


def test_model_without_the_protocol_names_what_to_implement(tmp_path, tiny_ref):
    with pytest.raises(ExportError, match=r"no split_parts\(\) method.*implement split_parts\(\)"):
        to_onnx_split(tiny_ref, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_a_folder_holding_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match=r"other files and no composition\.json"):
        to_onnx_split("fusion", tmp_path, parity=GATE)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("name", "flag", "message"),
    [
        ("cam/front", "imu_present", r"part name 'cam/front' is not a file name \(letters, digits, _ \. -\)"),
        ("..", "imu_present", r"part name '\.\.' is not a file name"),
        ("composition", "imu_present", r"part name 'composition' is reserved"),
        ("imu", "image_feature", r"part 'imu': its mask flag 'image_feature' is already the name of"),
        ("imu", "image", r"part 'imu': its mask flag 'image' is already the name of"),
    ],
)
def test_split_parts_names_are_checked_before_export(tmp_path, name, flag, message):
    from mmexport.export.loader import load_model
    from mmexport.split.export import split_parts_of

    from .split_models import MMEXPORT_SPEC, renamed

    loaded = load_model(renamed(name, flag), ModelSpec.from_dict(MMEXPORT_SPEC))
    with pytest.raises(SpecError, match=message):
        split_parts_of(loaded)


def test_call_kwargs_reach_the_model_and_the_parts_that_take_them(tmp_path):
    from .split_models import MMEXPORT_SPEC, gain

    spec = ModelSpec.from_dict({**MMEXPORT_SPEC, "call_kwargs": {"gain": 3.0}})
    result = to_onnx_split(
        gain(), tmp_path / "out", spec=spec, parity=GATE, export=ExportConfig(exporter="torchscript")
    )
    assert result.parity.passed
    assert result.parts["fuse"].manifest.spec.call_kwargs == {"gain": 3.0}
    assert result.parts["image"].manifest.spec.call_kwargs == {}
    assert read_composition(result.folder).spec.call_kwargs == {"gain": 3.0}
    feed = spec.sample_feed(spec.point("opt"), seed=5)
    with SplitSession(result.folder) as session:
        got = session.run(feed)["logits"]
    (expected,) = torch_outputs(gain(), feed, call_kwargs={"gain": 3.0})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
