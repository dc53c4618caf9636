"""GPU time beside host latency: per-call CUDA-event timings from runners that offer them.

A runner declaring ``Capability.TIMINGS`` has ``timings()``: the GPU milliseconds of its last
call by phase (the TensorRT backend: ``gpu``, ``h2d``, ``compute``, ``d2h``), or None. The harness
stays generic: it asks after each timed call, outside the timed interval, and keeps nothing when
a runner has none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from mmexport.bench.stats import LatencyStats
from mmexport.runtime.runner import Capability, Runner

Timings = Callable[[], "Mapping[str, float] | None"]


def timings_hook(runner: Runner) -> Timings | None:
    return runner.timings if Capability.TIMINGS in runner.capabilities else None


def gpu_stats(samples: Sequence[Mapping[str, float]]) -> dict[str, LatencyStats] | None:
    """Statistics per phase over the calls that reported timings; None when none did."""
    if not samples:
        return None
    phases = list(samples[0])
    return {p: LatencyStats.from_ms([s[p] for s in samples if p in s]) for p in phases}
