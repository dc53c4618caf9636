"""The validator's fast path (shapes that passed before) refuses exactly what the full checks refuse."""

from __future__ import annotations

import numpy as np
import pytest

from mmexport.core.errors import InputError
from mmexport.core.spec import ModelSpec
from mmexport.runtime import validation
from mmexport.runtime.validation import FeedValidator
from runtime.onnx_models import SPEC, feeds


@pytest.fixture
def validator():
    v = FeedValidator(ModelSpec.from_dict(SPEC))
    f = feeds()
    assert v(f) is f  # passes, shapes remembered
    return v


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda f: {**f, "image": f["image"].astype(np.float64)}, "dtype must be float32"),
        (lambda f: {**f, "tokens": f["tokens"].astype(np.float32)}, "dtype must be int64"),
        (lambda f: {**f, "image": np.ma.masked_array(f["image"])}, "is a masked array"),
        (lambda f: {**f, "image": f["image"].tolist()}, "must be a numpy.ndarray"),
        (lambda f: {"image": f["image"]}, "'tokens': is missing"),
        (lambda f: {"image": f["image"], "other": f["tokens"]}, "'tokens': is missing"),
        (lambda f: {**f, "extra": f["tokens"]}, "'extra': is not an input"),
        (lambda f: {**f, "tokens": np.zeros((3, 5), np.int64)}, "inputs sharing a dim must agree"),
    ],
)
def test_remembered_shapes_do_not_let_other_faults_through(validator, change, fragment):
    with pytest.raises(InputError, match=fragment):
        validator(change(feeds(seed=1)))


def test_casts_are_still_made_after_the_shapes_were_seen(validator):
    f = feeds(seed=2)
    out = validator({**f, "tokens": f["tokens"].astype(np.int32)})
    assert out["tokens"].dtype == np.int64 and out["image"] is f["image"]


def test_the_record_of_shapes_is_bounded(monkeypatch):
    monkeypatch.setattr(validation, "ACCEPTED_SHAPES", 3)
    v = FeedValidator(ModelSpec.from_dict(SPEC))
    for batch in range(1, 8):
        v(feeds(batch=batch))
        assert len(v._accepted) <= 3
    with pytest.raises(InputError, match=r"dim 'batch' \(axis 0\) must be in \[1, 8\], got 9"):
        v(feeds(batch=9))


def test_device_data_checks_remember_shapes_but_never_dtypes(validator):
    shapes = {"image": (2, 3, 8, 8), "tokens": (2, 5)}
    dtypes = {"image": np.dtype("float32"), "tokens": np.dtype("int64")}
    validator.check_meta(shapes, dtypes)
    validator.check_meta(shapes, dtypes)  # remembered
    with pytest.raises(InputError, match="dtype must be int64, got int32"):
        validator.check_meta(shapes, {**dtypes, "tokens": np.dtype("int32")})
    with pytest.raises(InputError, match="inputs sharing a dim must agree"):
        validator.check_meta({**shapes, "tokens": (3, 5)}, dtypes)
    with pytest.raises(InputError, match="'tokens': is missing"):
        validator.check_meta({"image": shapes["image"]}, {"image": dtypes["image"]})
