"""How much the reliability suite does: a fast part for every ``pytest`` run, the full part with
``MMEXPORT_RELIABILITY=full`` (what ``python tools/reliability_report.py`` sets).

The same tests run in both; only their sizes change (hypothesis examples, kill points, soak
calls). ``record`` counts what each case ended in; with ``MMEXPORT_RELIABILITY_STATS=FILE`` the
counts are written there as JSON at the end of the run, for the report.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, settings

FULL = os.environ.get("MMEXPORT_RELIABILITY", "fast") == "full"
STATS_FILE = os.environ.get("MMEXPORT_RELIABILITY_STATS")

EXAMPLES = 400 if FULL else 25
KILL_DELAYS = 6 if FULL else 0  # random-delay kill points per command, beside the fixed ones
SOAK_CALLS = 10_000 if FULL else 1_000

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not FULL,  # the fast part tries the same cases on every CI run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

OUTCOMES: Counter[tuple[str, str]] = Counter()
FIGURES: dict[str, object] = {}


def record(area: str, outcome: str, count: int = 1) -> None:
    """Count ``count`` cases of ``area`` (e.g. "feeds/tiny") that ended in ``outcome``."""
    OUTCOMES[(area, outcome)] += count


def figure(name: str, value: object) -> None:
    """Keep a measured figure (e.g. RSS growth) for the report."""
    FIGURES[name] = value


def write_stats() -> None:
    if not STATS_FILE:
        return
    rows = [{"area": a, "outcome": o, "count": n} for (a, o), n in sorted(OUTCOMES.items())]
    Path(STATS_FILE).write_text(
        json.dumps({"full": FULL, "outcomes": rows, "figures": FIGURES}, indent=2) + "\n", encoding="utf-8"
    )
