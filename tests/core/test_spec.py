from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from mmexport import MmexportError, ModelSpec
from mmexport.core.errors import SpecError

# The spec exactly as the design document shows it.
DESIGN_SPEC = """
{
  "inputs": [
    {"name": "image",  "modality": "image", "dtype": "float32", "shape": ["batch", 3, "height", "width"]},
    {"name": "tokens", "modality": "text",  "dtype": "int64",   "shape": ["batch", "seq"]},
    {"name": "audio",  "modality": "audio", "dtype": "float32", "shape": ["batch", 64, "frames"]}
  ],
  "outputs": ["logits"],
  "dims": {
    "batch":  {"min": 1,  "opt": 4,   "max": 32},
    "height": {"min": 64, "opt": 224, "max": 512},
    "width":  {"min": 64, "opt": 224, "max": 512},
    "seq":    {"min": 1,  "opt": 32,  "max": 256},
    "frames": {"min": 16, "opt": 100, "max": 1000}
  }
}
"""


def design() -> dict:
    return json.loads(DESIGN_SPEC)


def test_design_spec_is_accepted_and_round_trips():
    spec = ModelSpec.from_json(DESIGN_SPEC)
    assert spec.input_names == ["image", "tokens", "audio"]
    assert spec.output_names == ["logits"]
    assert spec.dims["height"].opt == 224
    assert spec.to_dict() == design()
    assert ModelSpec.from_dict(spec.to_dict()) == spec


def test_extensions_round_trip():
    data = design()
    data["inputs"][1]["range"] = [0, 1000]
    data["inputs"][0]["preprocess"] = {"kind": "image", "mean": [0.5] * 3, "std": [0.25] * 3}
    data["outputs"] = [{"name": "logits", "labels": ["a", "b"], "atol": 0.01}]
    spec = ModelSpec.from_dict(data)
    assert spec.input("tokens").range == (0, 1000)
    assert spec.outputs[0].atol == 0.01
    assert spec.to_dict() == data


def test_points_and_shapes():
    spec = ModelSpec.from_json(DESIGN_SPEC)
    assert spec.shapes(spec.point("min"))["image"] == (1, 3, 64, 64)
    assert spec.shapes(spec.point("max"))["audio"] == (32, 64, 1000)
    for point in spec.random_points(20, seed=3):
        for name, value in point.items():
            assert spec.dims[name].min <= value <= spec.dims[name].max
    assert spec.random_points(3, seed=1) == spec.random_points(3, seed=1)


def test_example_point_avoids_sizes_that_tracing_specializes():
    data = design()
    data["dims"]["batch"] = {"min": 1, "opt": 1, "max": 8}
    data["dims"]["seq"] = {"min": 1, "opt": 1, "max": 1}  # static: stays 1
    point = ModelSpec.from_dict(data).example_point()
    assert point["batch"] == 2
    assert point["seq"] == 1


def test_sample_feed_respects_dtype_and_range():
    data = design()
    data["inputs"][1]["range"] = [5, 9]
    spec = ModelSpec.from_dict(data)
    feed = spec.sample_feed(spec.point("opt"), seed=1)
    assert feed["image"].dtype == np.float32 and feed["image"].shape == (4, 3, 224, 224)
    assert feed["tokens"].dtype == np.int64
    assert feed["tokens"].min() >= 5 and feed["tokens"].max() < 9


def _mutated(mutate) -> dict:
    data = copy.deepcopy(design())
    mutate(data)
    return data


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (
            lambda d: d["dims"].update(seq={"min": 8, "opt": 4, "max": 16}),
            "dim 'seq': needs min <= opt <= max",
        ),
        (lambda d: d["dims"].update(seq={"min": 0, "opt": 4, "max": 16}), "min must be an integer >= 1"),
        (lambda d: d["dims"]["seq"].pop("opt"), "dim 'seq': missing opt"),
        (lambda d: d["inputs"][0].update(shape=["batch", 3, "hieght", "width"]), "uses dim 'hieght'"),
        (lambda d: d["dims"].update(extra={"min": 1, "opt": 1, "max": 2}), "dim 'extra': declared but used"),
        (lambda d: d["inputs"][0].update(dtype="float8"), "unknown dtype 'float8'"),
        (lambda d: d["inputs"][2].update(modality="lidar"), "unknown modality 'lidar'"),
        (lambda d: d["inputs"][0].update(range=[0, 1]), "range applies to integer inputs only"),
        (lambda d: d["inputs"][1].update(range=[5, 5]), "needs low < high"),
        (lambda d: d["inputs"][1].update(range=[0, 10**20]), "does not fit int64"),
        (lambda d: d["inputs"][0].update(shape=["batch", 0, "height", "width"]), "axis 1 must be an integer"),
        (lambda d: d["inputs"][1].update(name="image"), "input name 'image' appears twice"),
        (lambda d: d["inputs"][0].update(colour="rgb"), "unknown key 'colour'"),
        (lambda d: d.update(outputs=[]), "'outputs' must be a non-empty list"),
        (lambda d: d.update(outputs=["image"]), "'image' is both an input and an output"),
        (lambda d: d["inputs"][0].pop("dtype"), "input 'image': missing 'dtype'"),
        (lambda d: d["inputs"][0].update(preprocess={"kind": "jpeg"}), "preprocess kind 'jpeg' is not"),
        (
            lambda d: d["inputs"][0].update(preprocess={"kind": "image", "mean": [0.5], "std": [1, 1, 1]}),
            "preprocess mean must be 3 numbers",
        ),
        (
            lambda d: d["inputs"][2].update(
                preprocess={
                    "kind": "log_mel",
                    "sample_rate": 16000,
                    "n_fft": 400,
                    "hop_length": 160,
                    "n_mels": 80,
                }
            ),
            "n_mels is 80 but axis 1 of the shape is 64",
        ),
        (lambda d: d["inputs"][2].update(preprocess={"kind": "log_mel"}), "needs hop_length, n_fft, n_mels"),
    ],
)
def test_invalid_specs_name_the_problem(mutate, fragment):
    with pytest.raises(SpecError) as info:
        ModelSpec.from_dict(_mutated(mutate))
    assert fragment in str(info.value)
    assert isinstance(info.value, MmexportError)


def test_a_dim_declared_twice_is_refused():
    text = DESIGN_SPEC.replace(
        '"seq":    {"min": 1,  "opt": 32,  "max": 256},',
        '"seq": {"min": 1, "opt": 32, "max": 256}, "seq": {"min": 1, "opt": 8, "max": 64},',
    )
    with pytest.raises(SpecError, match="key 'seq' appears twice"):
        ModelSpec.from_json(text)


def test_spec_file_errors(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        ModelSpec.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="is not valid JSON"):
        ModelSpec.from_file(bad)


def test_importing_mmexport_needs_no_torch():
    import subprocess
    import sys

    code = "import sys, mmexport; print(*(m in sys.modules for m in ('torch', 'onnx', 'click')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_token_inputs_with_a_pad_id_are_padded_at_the_end():
    data = design()
    data["inputs"][1]["range"] = [1, 50]
    data["inputs"][1]["preprocess"] = {"kind": "tokens", "pad": 0}
    spec = ModelSpec.from_dict(data)
    tokens = spec.sample_feed({**spec.point("opt"), "batch": 16}, seed=2)["tokens"]
    lengths = (tokens != 0).sum(axis=1)
    assert lengths[0] == tokens.shape[1] and lengths.min() >= 1
    assert len(set(lengths.tolist())) > 1, "rows of different lengths"
    for row, n in zip(tokens, lengths, strict=True):
        assert (row[:n] != 0).all() and (row[n:] == 0).all(), "padding only at the end"


def mask_spec(**mask: object) -> dict:
    return {
        "inputs": [
            {
                "name": "attention_mask",
                "modality": "text",
                "dtype": "int64",
                "shape": ["batch", "seq"],
                **mask,
            },
            {
                "name": "input_ids",
                "modality": "text",
                "dtype": "int64",
                "shape": ["batch", "seq"],
                "range": [5, 50],
            },
        ],
        "outputs": ["y"],
        "dims": {"batch": {"min": 1, "opt": 4, "max": 16}, "seq": {"min": 1, "opt": 8, "max": 32}},
    }


def test_mask_of_pads_the_ids_and_marks_real_tokens():
    spec = ModelSpec.from_dict(mask_spec(mask_of="input_ids"))
    assert spec.to_dict()["inputs"][0]["mask_of"] == "input_ids"
    lengths_seen: set[int] = set()
    for k, point in enumerate([spec.point("max"), spec.point("opt"), *spec.random_points(10, seed=1)]):
        feed = spec.sample_feed(point, seed=k)
        ids, mask = feed["input_ids"], feed["attention_mask"]
        assert mask.dtype == np.int64 and mask.shape == ids.shape
        assert set(np.unique(mask)) <= {0, 1}
        lengths = mask.sum(axis=1)
        assert (lengths >= 1).all() and lengths[0] == ids.shape[1]
        # ones then zeros in every row; padding (id 0) exactly where the mask is 0
        assert (np.sort(mask, axis=1)[:, ::-1] == mask).all()
        assert ((ids == 0) == (mask == 0)).all()
        lengths_seen.update(int(n) for n in lengths)
    assert len(lengths_seen) > 5  # random lengths, not all full


def test_mask_of_uses_the_ids_pad_id_and_bool_masks():
    data = mask_spec(mask_of="input_ids")
    data["inputs"][0]["dtype"] = "bool"
    data["inputs"][1]["preprocess"] = {"kind": "tokens", "pad": 1}
    spec = ModelSpec.from_dict(data)
    feed = spec.sample_feed(spec.point("max"), seed=3)
    assert feed["attention_mask"].dtype == bool
    assert ((feed["input_ids"] == 1) == ~feed["attention_mask"]).all()
    assert not feed["attention_mask"].all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mask_of": "ids"}, "mask_of names 'ids', which is not another input"),
        ({"mask_of": "attention_mask"}, "which is not another input"),
        ({"mask_of": 3}, "mask_of must be the name of a token input"),
        ({"mask_of": "input_ids", "dtype": "float32"}, "a mask needs an integer or bool dtype, got float32"),
        (
            {"mask_of": "input_ids", "shape": ["batch", 8]},
            "'input_ids' is ['batch', 'seq'], this mask is ['batch', 8]",
        ),
        ({"mask_of": "input_ids", "range": [1, 2]}, "its range [1, 2) does not"),
    ],
)
def test_mask_of_is_checked(change, message):
    data = mask_spec()
    data["inputs"][0].update(change)
    with pytest.raises(SpecError, match="input 'attention_mask'") as e:
        ModelSpec.from_dict(data)
    assert message in str(e.value)


def test_mask_of_needs_integer_ids():
    data = mask_spec(mask_of="input_ids")
    data["inputs"][1].update(dtype="float32")
    del data["inputs"][1]["range"]
    with pytest.raises(SpecError, match="whose dtype is float32"):
        ModelSpec.from_dict(data)
