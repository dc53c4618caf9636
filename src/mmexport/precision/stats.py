"""Streaming activation statistics: memory stays flat however many samples are seen.

Each tensor keeps its running min/max and a histogram of |x| with a fixed number of bins. When a
batch exceeds the histogram's range, the bin width grows by an integer factor and old bins are
merged exactly (bin j of the new histogram is the sum of old bins jk .. jk+k-1), so no sample is
ever kept and the result does not depend on how samples were split into batches beyond the
binning of the first batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

NUM_BINS = 2048
QUANT_LEVELS = 127  # symmetric INT8: scale = amax / 127
METHODS = ("minmax", "entropy", "percentile")
DEFAULT_PERCENTILE = 99.99


@dataclass
class TensorStats:
    """Running statistics of one tensor's values."""

    name: str
    minimum: float = math.inf
    maximum: float = -math.inf
    count: int = 0
    nonfinite: int = 0
    width: float = 0.0  # bin width of `hist`; 0 until a non-zero value is seen
    hist: np.ndarray = field(default_factory=lambda: np.zeros(NUM_BINS, dtype=np.float64))
    histogram: bool = True  # False: min/max only (all that minmax calibration needs)

    @property
    def amax(self) -> float:
        """Largest |x| seen (0 if nothing was seen)."""
        if self.count == 0:
            return 0.0
        return max(abs(self.minimum), abs(self.maximum))

    def update(self, values: np.ndarray) -> None:
        x = np.asarray(values)
        if x.size == 0:
            return
        flat = x.reshape(-1)
        low, high = flat.min(), flat.max()  # NaN or inf anywhere shows in one of them
        if not (np.isfinite(low) and np.isfinite(high)):
            finite = np.isfinite(flat)
            self.nonfinite += int(flat.size - finite.sum())
            flat = flat[finite]
            if flat.size == 0:
                return
            low, high = flat.min(), flat.max()
        self.minimum = min(self.minimum, float(low))
        self.maximum = max(self.maximum, float(high))
        self.count += int(flat.size)
        if not self.histogram:
            return
        batch_amax = max(abs(float(low)), abs(float(high)))
        if batch_amax > 0.0:
            self._grow_to(batch_amax)
        if self.width == 0.0:  # all zeros so far: they belong to the first bin whatever its width
            self.hist[0] += flat.size
            return
        a = np.abs(flat, dtype=np.float32)  # a new array: scaled in place below
        np.divide(a, np.float32(self.width), out=a)
        np.minimum(a, np.float32(NUM_BINS - 1), out=a)
        self.hist += np.bincount(a.astype(np.intp), minlength=NUM_BINS)

    def _grow_to(self, amax: float) -> None:
        if self.width == 0.0:
            self.width = amax / NUM_BINS
            return
        span = self.width * NUM_BINS
        if amax <= span:
            return
        factor = math.ceil(amax / span)
        padded = np.zeros(math.ceil(NUM_BINS / factor) * factor, dtype=np.float64)
        padded[:NUM_BINS] = self.hist
        merged = padded.reshape(-1, factor).sum(axis=1)
        self.hist = np.zeros(NUM_BINS, dtype=np.float64)
        self.hist[: merged.size] = merged
        self.width *= factor

    def range_amax(self, method: str, percentile: float = DEFAULT_PERCENTILE) -> float:
        """The clipping threshold ``method`` picks for this tensor (> 0 whenever data was non-zero)."""
        if method == "minmax" or self.width == 0.0:
            return self.amax
        if not self.histogram:
            raise ValueError(f"{method} calibration needs a histogram; {self.name!r} kept min/max only")
        if method == "percentile":
            return min(self.amax, percentile_amax(self.hist, self.width, percentile))
        if method == "entropy":
            return min(self.amax, entropy_amax(self.hist, self.width))
        raise ValueError(f"unknown calibration method {method!r}")


def percentile_amax(hist: np.ndarray, width: float, percentile: float) -> float:
    """Upper edge of the bin where the cumulative share of |x| reaches ``percentile`` percent."""
    total = hist.sum()
    if total == 0:
        return 0.0
    cdf = np.cumsum(hist) / total
    index = int(np.searchsorted(cdf, percentile / 100.0, side="left"))
    return (min(index, hist.size - 1) + 1) * width


def entropy_amax(
    hist: np.ndarray, width: float, levels: int = QUANT_LEVELS + 1, candidates: int = 256
) -> float:
    """TensorRT's entropy calibration: the threshold whose 128-level quantized distribution has
    the smallest KL divergence from the clipped reference distribution.

    Thresholds are tried at about ``candidates`` bin edges from ``levels`` bins to the end; ties
    go to the largest threshold, as in TensorRT's EntropyCalibration2. All candidates are scored
    at once (one candidates x bins array), not one by one.
    """
    bins = hist.astype(np.float64).copy()
    if bins.sum() == 0:
        return 0.0
    bins[0] = bins[1] if bins.size > 1 else bins[0]  # the zero bin is dominated by ReLU zeros
    stop = bins.size
    stride = max(1, (stop - levels) // candidates)
    thresholds = np.arange(levels, stop + 1, stride)
    if thresholds.size == 0:
        return stop * width
    kl = _clipped_kls(bins, thresholds, levels)
    best = thresholds.size - 1 - int(np.argmin(kl[::-1]))  # the largest of equally good thresholds
    return float(thresholds[best]) * width


def _clipped_kls(bins: np.ndarray, thresholds: np.ndarray, levels: int) -> np.ndarray:
    """``_clipped_kl`` of every threshold at once, from prefix sums: each candidate costs
    O(levels), not O(bins) (quantized bin g of threshold i spans bins ceil(g i / levels) ..)."""
    nonzero = bins != 0
    logs = np.where(nonzero, bins * np.log(np.where(nonzero, bins, 1.0)), 0.0)
    csum = np.concatenate([[0.0], np.cumsum(bins)])
    ccount = np.concatenate([[0.0], np.cumsum(nonzero)])
    clog = np.concatenate([[0.0], np.cumsum(logs)])
    total = csum[-1]  # the reference keeps every count (the tail is added to its last bin)
    t = thresholds[:, None]
    starts = (np.arange(levels + 1)[None, :] * t + levels - 1) // levels  # [candidate, group + 1]
    sums = csum[starts[:, 1:]] - csum[starts[:, :-1]]
    counts = ccount[starts[:, 1:]] - ccount[starts[:, :-1]]
    kept = csum[thresholds]  # the quantized distribution's total
    last = bins[thresholds - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1.0), 1.0)
        log_q = np.log(mean) - np.log(kept)[:, None]  # log of q per quantized bin
        weights = sums.copy()
        weights[:, -1] -= last  # bin i-1 carries the tail: scored on its own below
        body = (clog[thresholds - 1] - csum[thresholds - 1] * np.log(total)) / total
        body -= (weights * log_q).sum(axis=1) / total
        ref_last = last + (total - kept)
        p_last = ref_last / total
        q_last = np.where(last != 0, np.exp(log_q[:, -1]), 1e-12)
        last_term = np.where(ref_last > 0, p_last * np.log(p_last / q_last), 0.0)
    return np.where(kept > 0, body + last_term, math.inf)


def _clipped_kl(bins: np.ndarray, i: int, levels: int) -> float:
    reference = bins[:i].copy()
    reference[-1] += bins[i:].sum()
    group = (np.arange(i) * levels) // i  # which of the `levels` quantized bins each bin falls in
    nonzero = bins[:i] != 0
    sums = np.bincount(group, weights=bins[:i], minlength=levels)
    counts = np.bincount(group, weights=nonzero.astype(np.float64), minlength=levels)
    expanded = np.where(nonzero, sums[group] / np.maximum(counts[group], 1.0), 0.0)
    p_total, q_total = reference.sum(), expanded.sum()
    if p_total == 0 or q_total == 0:
        return math.inf
    p = reference / p_total
    q = expanded / q_total
    mask = p > 0
    q_safe = np.where(q[mask] > 0, q[mask], 1e-12)
    return float(np.sum(p[mask] * np.log(p[mask] / q_safe)))
