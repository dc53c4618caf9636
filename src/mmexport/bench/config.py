"""How long and how much a benchmark measures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    """How long and how much to measure; defaults follow trtexec (200 ms warm-up, 3 s)."""

    warmup_s: float = 0.2
    duration_s: float = 3.0
    iterations: int | None = None
    min_iterations: int = 10
    block_s: float = 0.02
    seed: int = 0
