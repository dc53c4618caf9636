"""Every way a feed can break the spec gives an InputError naming the input, dim, expected and actual."""

from __future__ import annotations

import numpy as np
import pytest

from mmexport.core.errors import InputError, MmexportError
from mmexport.runtime import can_cast_losslessly
from runtime.onnx_models import feeds


def _error(session, bad) -> InputError:
    with pytest.raises(InputError) as info:
        session.run(bad)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, MmexportError)
    return info.value


def test_missing_input(session):
    f = feeds()
    del f["tokens"]
    e = _error(session, f)
    assert str(e) == "input 'tokens': is missing (the model takes image, tokens)"
    assert e.input == "tokens"


def test_unknown_input(session):
    e = _error(session, {**feeds(), "audio": np.zeros((2, 3), np.float32)})
    assert str(e) == "input 'audio': is not an input of this model (it takes image, tokens)"


def test_not_a_mapping(session):
    e = _error(session, [feeds()["image"]])
    assert "feeds must be a dict of input name -> numpy array, got list" in str(e)


@pytest.mark.parametrize("value", [[[1, 2]], 3, (1, 2)])
def test_non_ndarray_values_are_refused(session, value):
    e = _error(session, {**feeds(), "tokens": value})
    assert e.input == "tokens" and "must be a numpy.ndarray, got builtins." in str(e)
    assert "np.asarray" in str(e)


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("image", np.float64),
        ("image", np.int64),
        ("image", np.uint8),
        ("tokens", np.float32),
        ("tokens", bool),
    ],
)
def test_unsafe_dtypes_are_refused(session, name, dtype):
    f = feeds()
    f[name] = f[name].astype(dtype)
    e = _error(session, f)
    expected = "float32" if name == "image" else "int64"
    assert str(e).startswith(f"input {name!r}: dtype must be {expected}, got {np.dtype(dtype)}")
    assert (e.expected, e.actual) == (expected, str(np.dtype(dtype)))


def test_lossless_casts_are_made(session):
    f = feeds()
    reference = session.run(f)["logits"]
    cast = session.run({"image": f["image"].astype(np.float16).astype(np.float32), "tokens": f["tokens"]})
    assert cast["logits"].shape == reference.shape
    narrow = session.run({"image": f["image"], "tokens": f["tokens"].astype(np.int32)})
    np.testing.assert_array_equal(narrow["logits"], reference)
    unsigned = session.run({"image": f["image"], "tokens": f["tokens"].astype(np.uint8)})
    np.testing.assert_array_equal(unsigned["logits"], reference)
    half = session.validate({"image": f["image"].astype(np.float16), "tokens": f["tokens"]})
    assert half["image"].dtype == np.float32


@pytest.mark.parametrize(
    ("actual", "expected", "ok"),
    [
        ("int32", "int64", True),
        ("uint8", "int32", True),
        ("float16", "float32", True),
        ("int64", "int32", False),
        ("uint8", "float32", False),
        ("int8", "uint8", False),
        ("float32", "float16", False),
        ("bool", "int64", False),
    ],
)
def test_cast_rules(actual, expected, ok):
    assert can_cast_losslessly(np.dtype(actual), np.dtype(expected)) is ok


def test_rank(session):
    e = _error(session, {**feeds(), "tokens": np.zeros((2, 5, 1), np.int64)})
    assert str(e) == "input 'tokens': rank must be 2 [batch, seq], got 3 [2, 5, 1]"
    assert (e.expected, e.actual) == (2, 3)


def test_fixed_axis(session):
    e = _error(session, {**feeds(), "image": np.zeros((2, 4, 8, 8), np.float32)})
    assert str(e) == "input 'image': axis 1 must be 3 [batch, 3, height, width], got 4"
    assert (e.dim, e.axis, e.expected, e.actual) == ("axis 1", 1, 3, 4)


@pytest.mark.parametrize(("height", "expected_text"), [(3, "got 3"), (17, "got 17")])
def test_dim_out_of_range(session, height, expected_text):
    e = _error(session, feeds(height=height))
    assert str(e) == f"input 'image': dim 'height' (axis 2) must be in [4, 16], {expected_text}"
    assert (e.input, e.dim, e.axis, e.expected, e.actual) == ("image", "height", 2, (4, 16), height)


def test_shared_dim_must_agree(session):
    f = feeds(batch=2)
    f["tokens"] = f["tokens"][:1]
    e = _error(session, f)
    assert str(e) == (
        "input 'tokens': dim 'batch' (axis 0) is 1 but input 'image' has 2; inputs sharing a dim must agree"
    )
    assert (e.dim, e.expected, e.actual) == ("batch", 2, 1)


def test_corners_pass(session):
    for point in ("min", "opt", "max"):
        f = session.spec.sample_feed(session.spec.point(point))
        assert session.run(f)["logits"].shape == (f["image"].shape[0], 4)
