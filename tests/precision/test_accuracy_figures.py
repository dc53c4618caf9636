"""Accuracy's agreement figures, from the runtime's compare() over batches: known arrays, known figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmexport.precision.accuracy import _Accumulator


def test_agreement_figures_over_two_batches():
    acc = _Accumulator("logits", classifier=True)
    reference = np.array([[1.0, 0.0], [0.0, 2.0]])
    acc.update(np.array([[1.5, 0.0], [0.0, -2.0]]), reference)  # row cosines 1 and -1; argmax 0 = 0, 0 != 1
    acc.update(np.array([[0.0, 4.0]]), np.array([[0.0, 4.0]]))  # identical: cosine 1, same argmax
    result = acc.result()
    assert result.max_abs == 4.0  # |-2 - 2|
    assert result.max_rel == 1.0  # 4 / the reference's largest |value| (4)
    assert result.cosine_min == -1.0 and result.cosine_mean == pytest.approx(1 / 3)
    assert result.top1 == pytest.approx(2 / 3)


def test_nan_in_both_is_still_a_difference_and_zeros_agree():
    acc = _Accumulator("y", classifier=False)
    acc.update(np.array([[np.nan, 1.0], [0.0, 0.0]]), np.array([[np.nan, 1.0], [0.0, 0.0]]))
    result = acc.result()
    assert result.max_abs == math.inf and result.top1 is None
    assert result.cosine_min == 0.0 and result.cosine_mean == 0.5  # a NaN row never agrees; zero rows do
