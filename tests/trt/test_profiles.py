from __future__ import annotations

import pytest

from mmexport.core.errors import MmexportError
from mmexport.core.spec import ModelSpec
from mmexport.models import builtin_names, get_builtin
from mmexport.trt.profiles import build_profiles, parse_profile, spec_profile, static_profile

SPEC = ModelSpec.from_dict(
    {
        "inputs": [
            {"name": "image", "modality": "image", "dtype": "float32", "shape": ["batch", 3, "side", "side"]},
            {"name": "tokens", "modality": "text", "dtype": "int64", "shape": ["batch", "seq"]},
        ],
        "outputs": ["logits"],
        "dims": {
            "batch": {"min": 1, "opt": 4, "max": 16},
            "side": {"min": 32, "opt": 64, "max": 128},
            "seq": {"min": 1, "opt": 8, "max": 32},
        },
    }
)


def test_spec_profile_gives_min_opt_max_per_input_with_shared_dims_equal() -> None:
    profile = spec_profile(SPEC)
    assert profile.shapes["image"] == ((1, 3, 32, 32), (4, 3, 64, 64), (16, 3, 128, 128))
    assert profile.shapes["tokens"] == ((1, 1), (4, 8), (16, 32))
    assert profile.dynamic
    assert profile.to_dict()["tokens"] == [[1, 1], [4, 8], [16, 32]]


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_specs_give_a_consistent_profile(name: str) -> None:
    spec = get_builtin(name).spec
    profile = spec_profile(spec)
    assert set(profile.shapes) == set(spec.input_names)
    for which, index in (("min", 0), ("opt", 1), ("max", 2)):
        point = spec.point(which)
        for inp in spec.inputs:
            assert profile.shapes[inp.name][index] == inp.concrete_shape(point)


def test_extra_profile_overrides_named_dims_and_keeps_the_rest() -> None:
    profile = parse_profile("batch=1:1:1,seq=8:16:32", SPEC)
    assert profile.shapes["image"][0] == (1, 3, 32, 32)  # side keeps the spec's range
    assert profile.shapes["tokens"] == ((1, 8), (1, 16), (1, 32))
    assert parse_profile("batch=8", SPEC).shapes["tokens"][0] == (8, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("frames=1:2:3", "not DIM=MIN:OPT:MAX for a named dim"),
        ("batch=4:2:8", "min <= opt <= max"),
        ("batch=1:2:64", "leaves the spec's range 1..16"),
        ("batch=a:b:c", "integers"),
        ("batch", "not DIM=MIN:OPT:MAX"),
    ],
)
def test_bad_profile_text_is_refused(text: str, message: str) -> None:
    with pytest.raises(MmexportError, match=message):
        parse_profile(text, SPEC)


def test_static_shapes_fix_every_dim_at_one_point() -> None:
    profile = static_profile(spec_profile(SPEC), SPEC, "opt")
    assert not profile.dynamic
    assert profile.shapes["image"] == ((4, 3, 64, 64),) * 3


def test_build_profiles_puts_the_spec_first_and_drops_duplicates() -> None:
    profiles = build_profiles(SPEC, ("batch=1:1:1", "batch=1:4:16"))
    assert len(profiles) == 2  # batch=1:4:16 is the spec's own profile
    assert profiles[0].shapes == spec_profile(SPEC).shapes
    assert len(build_profiles(SPEC, ("batch=1:1:1",), static_at="opt")) == 2
