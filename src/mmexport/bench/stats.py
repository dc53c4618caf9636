"""Latency statistics of one series of timed calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per call; percentiles by linear interpolation (numpy's default)."""

    count: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    total_s: float

    @classmethod
    def from_ms(cls, samples_ms: Sequence[float] | np.ndarray) -> LatencyStats:
        arr = np.asarray(samples_ms, dtype=np.float64)
        if arr.size == 0:
            raise ValueError("no samples")
        p50, p90, p95, p99 = (float(v) for v in np.percentile(arr, PERCENTILES))
        return cls(
            count=int(arr.size),
            mean=float(arr.mean()),
            std=float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            min=float(arr.min()),
            p50=p50,
            p90=p90,
            p95=p95,
            p99=p99,
            max=float(arr.max()),
            total_s=float(arr.sum()) / 1e3,
        )

    @property
    def calls_per_s(self) -> float:
        """Throughput of back-to-back calls: count over the time spent in them."""
        return self.count / self.total_s if self.total_s > 0 else float("inf")

    def to_dict(self) -> dict[str, float]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}
