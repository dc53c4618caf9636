"""The vectorized entropy search scores every threshold exactly as the per-threshold definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmexport.precision.stats import NUM_BINS, TensorStats, _clipped_kl, _clipped_kls, entropy_amax


def one_by_one(hist: np.ndarray, width: float, levels: int = 128, candidates: int = 256) -> float:
    """TensorRT's search as a loop over thresholds (the last of equally good ones wins)."""
    bins = hist.astype(np.float64).copy()
    bins[0] = bins[1]
    stride = max(1, (bins.size - levels) // candidates)
    best_i, best_kl = bins.size, math.inf
    for i in range(levels, bins.size + 1, stride):
        kl = _clipped_kl(bins, i, levels)
        if kl <= best_kl:
            best_i, best_kl = i, kl
    return best_i * width


@pytest.mark.parametrize("case", range(12))
def test_vectorized_search_matches_the_loop(case: int) -> None:
    rng = np.random.default_rng(case)
    values = np.abs(rng.standard_t(df=2 + case % 5, size=50_000))
    if case % 3 == 0:
        values[:25_000] = 0.0  # ReLU zeros
    if case % 4 == 1:
        values = np.round(values * 3) / 3  # empty bins between populated ones
    stats = TensorStats("t")
    stats.update(values.astype(np.float32))
    assert entropy_amax(stats.hist, stats.width) == one_by_one(stats.hist, stats.width)
    bins = stats.hist.copy()
    bins[0] = bins[1]
    thresholds = np.arange(128, NUM_BINS + 1, 15)
    expected = [_clipped_kl(bins, int(i), 128) for i in thresholds]
    np.testing.assert_allclose(_clipped_kls(bins, thresholds, 128), expected, rtol=1e-7, atol=1e-12)
