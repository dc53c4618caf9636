"""What every precision stage returns, and the summary lines the stages share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmexport.core.artifact import LoadedArtifact
from mmexport.precision.accuracy import AccuracyReport


@dataclass
class StageResult:
    path: Path
    accuracy: AccuracyReport | None  # None when the caller asked for no evaluation (eval_samples=0)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    artifact: LoadedArtifact | None = None  # what was written, loaded: pass it to the next stage


def report_dict(accuracy: AccuracyReport | None) -> dict[str, Any] | None:
    return accuracy.to_dict() if accuracy is not None else None


def rate_note(what: str, samples: int, seconds: float) -> str:
    """``evaluation: 32 samples in 1.2 s, 27 samples/s`` for a stage's summary."""
    return f"{what}: {samples} samples in {seconds:.1f} s, {samples / max(seconds, 1e-9):.3g} samples/s"
