"""Hostile spec files: each is refused at load with one SpecError naming what is wrong, never a
traceback (RecursionError, ValueError from int conversion, TypeError in preprocess, MemoryError)."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmexport.core.errors import SpecError
from mmexport.core.spec import ModelSpec
from mmexport.core.spec_checks import check_fits_memory
from mmexport.data.task_spec import FUSION_SPEC

BASE: dict[str, Any] = {
    "inputs": [{"name": "x", "modality": "tensor", "dtype": "float32", "shape": ["batch", 4]}],
    "outputs": ["y"],
    "dims": {"batch": {"min": 1, "opt": 2, "max": 8}},
}


def _load(tmp_path: Path, text: str) -> ModelSpec:
    path = tmp_path / "spec.json"
    path.write_text(text, encoding="utf-8")
    return ModelSpec.from_file(path)


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deep_nesting_is_one_spec_error(tmp_path: Path, depth: int) -> None:
    text = json.dumps(BASE)[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(SpecError, match="nested deeper"):
        _load(tmp_path, text)


def test_deep_nesting_in_preprocess_is_refused(tmp_path: Path) -> None:
    data = copy.deepcopy(FUSION_SPEC)
    data["inputs"][0]["preprocess"]["mean"] = [
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
    ]
    with pytest.raises(SpecError):
        _load(tmp_path, json.dumps(data))


def test_five_thousand_digit_integer_is_one_spec_error(tmp_path: Path) -> None:
    text = json.dumps(BASE).replace('"max": 8', '"max": ' + "9" * 5000)
    with pytest.raises(SpecError, match="integer"):
        _load(tmp_path, text)


@pytest.mark.parametrize("exponent", [19, 30])
def test_dims_beyond_int64_are_refused_at_load(exponent: int) -> None:
    data = copy.deepcopy(BASE)
    data["dims"]["batch"]["max"] = 10**exponent
    with pytest.raises(SpecError, match="64-bit"):
        ModelSpec.from_dict(data)


@pytest.mark.parametrize("exponent", [9, 12, 18])
def test_a_feed_larger_than_memory_is_refused_before_allocating(exponent: int) -> None:
    data = copy.deepcopy(BASE)
    data["dims"]["batch"]["max"] = 10**exponent
    data["inputs"][0]["shape"] = ["batch", 10**6]
    spec = ModelSpec.from_dict(data)
    with pytest.raises(SpecError, match="more than this machine's memory"):
        check_fits_memory(spec, spec.point("max"), what="the parity gate")
    check_fits_memory(spec, spec.point("opt"), what="the parity gate")


def test_fixed_axis_beyond_int64_is_refused() -> None:
    data = copy.deepcopy(BASE)
    data["inputs"][0]["shape"] = ["batch", 10**30]
    with pytest.raises(SpecError):
        ModelSpec.from_dict(data)


def test_empty_output_name_is_refused() -> None:
    data = copy.deepcopy(BASE)
    data["outputs"] = [""]
    with pytest.raises(SpecError, match="output"):
        ModelSpec.from_dict(data)
    data["outputs"] = [{"name": ""}]
    with pytest.raises(SpecError, match="output"):
        ModelSpec.from_dict(data)


def _fusion_with(input_index: int, key: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(FUSION_SPEC)
    data["inputs"][input_index]["preprocess"][key] = value
    return data


def _input_index(kind: str) -> int:
    return next(i for i, inp in enumerate(FUSION_SPEC["inputs"]) if inp["preprocess"]["kind"] == kind)


BAD_PREPROCESS = [
    ("image", "scale", "x"),
    ("image", "scale", 0),
    ("image", "scale", float("inf")),
    ("image", "scale", [1.0]),
    ("image", "channel_order", ["rgb"]),
    ("image", "channel_order", "grb"),
    ("image", "mean", [True, 0.5, 0.5]),
    ("image", "std", ["a", "b", "c"]),
    ("image", "std", [float("nan"), 1.0, 1.0]),
    ("image", "kind", ["image"]),
    ("log_mel", "n_fft", 10**15),
    ("log_mel", "n_fft", 1e15),
    ("log_mel", "hop_length", 10**12),
    ("log_mel", "sample_rate", 10**12),
    ("log_mel", "duration_s", "long"),
    ("log_mel", "duration_s", -1),
    ("log_mel", "duration_s", 1e15),
    ("log_mel", "duration_s", True),
    ("tokens", "lowercase", "yes"),
    ("tokens", "vocab", "abc"),
    ("tokens", "vocab", []),
    ("tokens", "unk", ["a"]),
    ("tokens", "pad", 10**30),
    ("tokens", "pad", -(10**30)),
]


@pytest.mark.parametrize(("kind", "key", "value"), BAD_PREPROCESS)
def test_wrong_preprocess_values_are_refused_at_load(kind: str, key: str, value: Any) -> None:
    with pytest.raises(SpecError, match="preprocess"):
        ModelSpec.from_dict(_fusion_with(_input_index(kind), key, value))


def test_kind_given_as_list_is_one_spec_error() -> None:
    data = copy.deepcopy(BASE)
    data["inputs"][0]["preprocess"] = {"kind": ["tokens"]}
    with pytest.raises(SpecError, match="preprocess"):
        ModelSpec.from_dict(data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@given(kind=st.sampled_from(["image", "log_mel", "tokens"]), key=st.text(max_size=12), value=JSON_VALUES)
@settings(max_examples=150, deadline=None)
def test_any_preprocess_value_loads_or_is_a_spec_error(kind: str, key: str, value: Any) -> None:
    index = _input_index(kind)
    keys = [*FUSION_SPEC["inputs"][index]["preprocess"], key]
    for k in keys[-2:]:
        with contextlib.suppress(SpecError):
            ModelSpec.from_dict(_fusion_with(index, k, value))


def test_the_parity_gate_refuses_before_it_allocates(tmp_path: Path) -> None:
    import torch

    from mmexport.export.parity import run_parity

    data = copy.deepcopy(BASE)
    data["dims"]["batch"]["max"] = 10**12
    spec = ModelSpec.from_dict(data)
    with pytest.raises(SpecError, match="the parity gate needs a feed of"):
        run_parity(torch.nn.Identity(), tmp_path / "never-opened.onnx", spec)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (keys and indices), the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:4]):
            out += _paths(v, (*prefix, i))
    return out


FUSION_PATHS = _paths(FUSION_SPEC)


@given(path=st.sampled_from(FUSION_PATHS), value=JSON_VALUES)
@settings(max_examples=300, deadline=None)
def test_any_value_anywhere_in_a_spec_loads_or_is_a_spec_error(path: tuple[Any, ...], value: Any) -> None:
    data: Any = copy.deepcopy(FUSION_SPEC)
    if not path:
        data = value
    else:
        holder = data
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = value
    try:
        text = json.dumps(data)
    except ValueError:
        return
    with contextlib.suppress(SpecError):
        ModelSpec.from_json(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"inputs": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper than 32 levels"),
        ('{"inputs": [], "outputs": ["y"], "dims": {"b": {"max": ' + "9" * 5000 + "}}}", "5000 digits"),
    ],
)
def test_cli_prints_one_error_line_for_a_hostile_spec(tmp_path: Path, text: str, message: str) -> None:
    from click.testing import CliRunner

    from mmexport.cli.app import cli

    (tmp_path / "spec.json").write_text(text)
    args = ["to-onnx", "fusion", "--spec", str(tmp_path / "spec.json"), "-o", str(tmp_path / "m.onnx")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.output.startswith("error: spec: spec file") and result.output.count("\n") == 1
    assert message in result.output
    assert not (tmp_path / "m.onnx").exists()


def test_random_inputs_larger_than_memory_are_refused_before_numpy_allocates() -> None:
    from mmexport.core.memory import MAX_FEED_BYTES

    assert MAX_FEED_BYTES is not None  # Linux reports its memory
    side = int((MAX_FEED_BYTES / 4) ** 0.5) + 1024  # one float32 image of side x side exceeds memory
    spec = ModelSpec.from_dict(
        {
            "inputs": [{"name": "image", "modality": "image", "dtype": "float32", "shape": [1, "h", "w"]}],
            "outputs": ["y"],
            "dims": {"h": {"min": 1, "opt": 8, "max": side}, "w": {"min": 1, "opt": 8, "max": side}},
        }
    )
    assert spec.sample_feed(spec.example_point())["image"].shape == (1, 8, 8)
    with pytest.raises(SpecError, match=r"random inputs for the spec needs a feed of .* GiB"):
        spec.sample_feed({"h": side, "w": side})
