"""Latency distributions as a PNG: one panel per shape case, one box per target (matplotlib, lazily)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING

from mmexport.core.errors import MissingDependencyError
from mmexport.core.files import atomic_writer

if TYPE_CHECKING:
    from mmexport.bench.report import BenchReport


def plot_report(report: BenchReport, path: Path) -> Path:
    """Boxes span p25-p75, whiskers p1-p99, the line is p50; first calls are not shown."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", "plot", "--plot (latency plots)") from None
    labels = [t.label for t in report.targets]
    cols = min(len(report.cases), 3)
    rows = -(-len(report.cases) // cols)
    width = max(4.0, 1.2 * len(labels) + 2)
    # Figure without pyplot: no global state, no display backend to choose.
    fig = Figure(figsize=(width * cols, 4.0 * rows), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[len(report.cases) :]:
        ax.set_visible(False)
    for ax, case in zip(axes, report.cases, strict=False):
        data = [report.result(label, case).samples_ms for label in labels]
        ax.boxplot(data, whis=(1, 99), showfliers=False, **{labels_keyword(): labels})
        ax.set_title(case, fontsize=10)
        ax.set_ylabel("latency per call (ms)")
        ax.tick_params(axis="x", labelrotation=20)
        ax.grid(axis="y", alpha=0.3)
    host = report.environment.get("host", {})
    fig.suptitle(f"mmexport bench: {host.get('cpu', '')}", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as f:  # a killed run or a full disk leaves an earlier plot whole
        fig.savefig(f, dpi=110, format="png")
    return path


def labels_keyword() -> str:
    """``Axes.boxplot``'s name for the box labels: ``tick_labels`` from matplotlib 3.9 (``labels``
    is deprecated there, later removed), ``labels`` before (3.7 and 3.8 refuse ``tick_labels``)."""
    import matplotlib

    return "tick_labels" if _version(matplotlib.__version__) >= (3, 9) else "labels"


def _version(text: str) -> tuple[int, ...]:
    """``"3.8.4"`` -> ``(3, 8)``; release suffixes (``rc1``, ``.dev0``) are ignored."""
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return tuple(parts)
