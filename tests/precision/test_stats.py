from __future__ import annotations

import numpy as np
import pytest

from mmexport.precision.stats import NUM_BINS, TensorStats, entropy_amax, percentile_amax


def test_range_growth_merges_bins_exactly() -> None:
    rng = np.random.default_rng(0)
    small = rng.uniform(-1, 1, 10_000).astype(np.float32)
    large = rng.uniform(-7, 7, 10_000).astype(np.float32)
    streamed = TensorStats("t")
    streamed.update(small)
    first_width = streamed.width
    streamed.update(large)
    factor = round(streamed.width / first_width)
    assert factor == 7 or factor == 8  # grown by an integer factor, covering 7
    assert streamed.width == pytest.approx(first_width * factor)
    # Old bins merge exactly: bin j of the grown histogram holds old bins jk .. jk+k-1; the new
    # batch is binned at the grown width.
    old_index = (np.abs(small) / np.float32(first_width)).astype(np.int64)
    old = np.bincount(np.minimum(old_index, NUM_BINS - 1), minlength=NUM_BINS)
    merged = np.bincount(np.arange(NUM_BINS) // factor, weights=old, minlength=NUM_BINS)
    new = np.bincount(
        np.minimum((np.abs(large) / np.float32(streamed.width)).astype(np.int64), NUM_BINS - 1),
        minlength=NUM_BINS,
    )
    np.testing.assert_array_equal(streamed.hist, merged + new)
    everything = np.concatenate([small, large])
    assert streamed.count == 20_000
    assert streamed.amax == pytest.approx(float(np.abs(everything).max()))


def test_zeros_first_then_values_and_non_finite() -> None:
    stats = TensorStats("t")
    stats.update(np.zeros(100, dtype=np.float32))
    stats.update(np.array([np.nan, np.inf, 2.0, -4.0], dtype=np.float32))
    assert stats.hist.sum() == 102
    assert stats.nonfinite == 2
    assert (stats.minimum, stats.maximum, stats.amax) == (-4.0, 2.0, 4.0)


def test_methods_clip_outliers_but_not_minmax() -> None:
    rng = np.random.default_rng(1)
    stats = TensorStats("t")
    for _ in range(10):
        stats.update(rng.normal(size=50_000).astype(np.float32))
    stats.update(np.array([60.0], dtype=np.float32))  # one outlier
    assert stats.range_amax("minmax") == 60.0
    entropy = stats.range_amax("entropy")
    percentile = stats.range_amax("percentile", 99.99)
    assert 2.0 < entropy < 20.0
    assert 3.0 < percentile < 6.0
    assert stats.range_amax("percentile", 100.0) == pytest.approx(60.0, rel=0.01)


def test_helpers_on_empty_histograms() -> None:
    empty = np.zeros(NUM_BINS)
    assert percentile_amax(empty, 1.0, 99.0) == 0.0
    assert entropy_amax(empty, 1.0) == 0.0
    assert TensorStats("t").range_amax("entropy") == 0.0
    with pytest.raises(ValueError, match="unknown calibration method"):
        stats = TensorStats("t")
        stats.update(np.ones(3, dtype=np.float32))
        stats.range_amax("mse")
