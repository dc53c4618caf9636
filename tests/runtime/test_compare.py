"""``compare()``: known arrays give known figures; runners and outputs mix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmexport.runtime.compare import EXACT, Tolerance, compare, compare_arrays
from runtime.onnx_models import feeds


def check(actual, expected, atol, rtol):
    return compare_arrays(np.asarray(actual), np.asarray(expected), Tolerance(atol, rtol))


def test_compare_catches_nan_and_shape_differences():
    a = np.array([1.0, np.nan], dtype=np.float32)
    assert check(a, a.copy(), 1e-4, 1e-3).passed is True
    assert check(np.array([1.0, 2.0]), np.array([1.0, np.nan]), 1e-4, 1e-3).passed is False
    assert check(np.zeros((2, 3)), np.zeros((3, 2)), 1e-4, 1e-3).passed is False
    assert check(np.array([1.0]), np.array([1.002]), 1e-4, 1e-3).passed is False


def test_known_arrays_give_known_figures():
    reference = np.array([[1.0, 0.0], [0.0, 2.0]])
    actual = np.array([[1.5, 0.0], [0.0, -2.0]])
    c = compare_arrays(actual, reference, Tolerance(0.6, 0.0), "y")
    assert (c.output, c.max_abs, c.max_rel) == ("y", 4.0, 2.0)  # |-2 - 2| = 4, 4 / |2| = 2
    assert c.sample_cosines.tolist() == [1.0, -1.0] and c.cosine == -1.0
    assert c.reference_amax == 2.0 and c.passed is False  # 4 > 0.6
    close = compare_arrays(np.array([1.05, 2.0]), np.array([1.0, 2.0]), Tolerance(0.0, 0.1))
    assert close.passed and close.max_abs == pytest.approx(0.05) and close.max_rel == pytest.approx(0.05)


def test_nan_infinity_and_zeros():
    both = compare_arrays(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))
    assert both.max_abs == 0.0 and both.passed  # NaN in both places is equal by default
    strict = compare_arrays(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), equal_nan=False)
    assert strict.max_abs == math.inf and not strict.passed
    zeros = compare_arrays(np.zeros((2, 3)), np.zeros((2, 3)))
    assert zeros.sample_cosines.tolist() == [1.0, 1.0] and zeros.max_rel == 0.0
    one_zero = compare_arrays(np.zeros((1, 3)), np.ones((1, 3)))
    assert one_zero.cosine == 0.0 and one_zero.max_rel == 1.0
    shape = compare_arrays(np.zeros(3), np.zeros(4))
    assert (shape.max_abs, shape.cosine, shape.same_shape) == (math.inf, -1.0, False)


def test_compare_runs_runners_and_takes_outputs(tiny_path):
    from mmexport.runtime import Session

    with Session(tiny_path) as session:
        expected = session.run(feeds())
        shifted = {"logits": expected["logits"] + 0.5}
        same, off = compare([session, expected, shifted], feeds(), Tolerance(0.1, 0.0))
    assert same.passed and same.output("logits").max_abs == 0.0
    assert not off.passed and off.output("logits").max_abs == pytest.approx(0.5)
    assert off.output("logits").tolerance == Tolerance(0.1, 0.0)
    per_output = compare([expected, shifted], tolerances={"logits": Tolerance(1.0, 0.0)})
    assert per_output[0].passed
    assert compare([expected, shifted])[0].outputs[0].tolerance == EXACT
    with pytest.raises(ValueError, match="give feeds"):
        compare([session, expected])
