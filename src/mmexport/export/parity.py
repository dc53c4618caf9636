"""The parity gate: onnxruntime (CPU) against eager PyTorch over the spec's shape range.

Points: by default the opt point and the all-min and all-max corners (so every dynamic dim is
tried at its min and max), each once; ``ParityConfig`` can name fewer corners or add random points
inside the ranges. The opt point runs first: its time, scaled by feed size, estimates the rest.
Both sides are runners (``TorchRunner``, the runtime's ``OnnxModelRunner``); every output is
compared elementwise by the runtime's ``compare()``: ``|onnx - torch| <= atol + rtol * |torch|``.
One failing element fails the gate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmexport.core.errors import ConfigError
from mmexport.core.progress import Progress, no_progress
from mmexport.core.spec import ModelSpec, ShapePoint
from mmexport.core.spec_checks import check_fits_memory
from mmexport.export.torch_runner import NotTensorsError as NotTensorsError
from mmexport.export.torch_runner import TorchRunner
from mmexport.export.torch_runner import flatten_outputs as flatten_outputs
from mmexport.export.torch_runner import torch_outputs as torch_outputs
from mmexport.runtime.backends.onnxrt.runner import OnnxModelRunner
from mmexport.runtime.compare import Tolerance, compare

log = logging.getLogger(__name__)

# (atol, rtol) per output dtype. float32: exporters reorder reductions and fuse ops, which
# moves results by a few ulps times the reduction length; 1e-4 / 1e-3 passes honest graphs of
# the sizes we ship and fails any real divergence.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-6),
    "float32": (1e-4, 1e-3),
    "float16": (1e-2, 1e-2),
}
EXACT = (0.0, 0.0)


CORNERS = ("opt", "min", "max")


@dataclass(frozen=True)
class ParityConfig:
    """How the gate samples shapes (``corners`` of the spec, each once, then ``random_points``
    inside the ranges) and how strict it is."""

    random_points: int = 0
    seed: int = 0
    atol: float | None = None
    rtol: float | None = None
    corners: tuple[str, ...] = CORNERS

    def __post_init__(self) -> None:
        unknown = [c for c in self.corners if c not in CORNERS]
        if unknown or self.random_points < 0:
            raise ConfigError(
                f"parity points must be corners ({', '.join(CORNERS)}) and a count of random points >= 0, "
                f"got corners {list(self.corners)} and {self.random_points} random",
                fields=("parity_points",),
            )
        if not self.corners and not self.random_points:
            raise ConfigError("the parity gate needs at least one point", fields=("parity_points",))


def parse_points(text: str) -> tuple[tuple[str, ...], int]:
    """``--parity-points``: ``opt,min,max`` (any of the corners), an integer (that many random
    points), or both (``opt,2``) -> (corners, random points)."""
    corners: list[str] = []
    random = 0
    for item in (t.strip().lower() for t in text.split(",")):
        if item.isdigit():
            random = int(item)
        elif item in CORNERS and item not in corners:
            corners.append(item)
        else:
            raise ConfigError(
                f"--parity-points takes {', '.join(CORNERS)} and/or a number of random points, "
                f"comma-separated; got {item!r} in {text!r}",
                fields=("parity_points",),
            )
    ParityConfig(random_points=random, corners=tuple(corners))  # at least one point
    return tuple(corners), random


@dataclass
class ParityRow:
    """One output at one shape point."""

    point: str
    shapes: dict[str, list[int]]
    output: str
    max_abs: float | None
    max_rel: float | None
    atol: float
    rtol: float
    passed: bool
    error: str | None = None
    failed_in: str | None = None  # "pytorch" or "onnxruntime" when one of them raised


@dataclass
class ParityReport:
    rows: list[ParityRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.passed for r in self.rows)

    @property
    def failures(self) -> list[ParityRow]:
        return [r for r in self.rows if not r.passed]

    @property
    def points(self) -> list[str]:
        return list(dict.fromkeys(r.point for r in self.rows))

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "rows": [asdict(r) for r in self.rows]}


def shape_points(spec: ModelSpec, config: ParityConfig) -> list[tuple[str, ShapePoint]]:
    """The named points the gate checks, duplicates removed (a fully static spec has one)."""
    named = [(corner, spec.point(corner)) for corner in config.corners]
    named += [
        (f"random-{k + 1}", p) for k, p in enumerate(spec.random_points(config.random_points, config.seed))
    ]
    seen: list[ShapePoint] = []
    out = []
    for name, point in named:
        if point not in seen:
            seen.append(point)
            out.append((name, point))
    return out


def tolerance(spec: ModelSpec, output: str, dtype: np.dtype, config: ParityConfig) -> tuple[float, float]:
    atol, rtol = DEFAULT_TOLERANCES.get(np.dtype(dtype).name, EXACT)
    out_spec = next(o for o in spec.outputs if o.name == output)
    atol = out_spec.atol if out_spec.atol is not None else atol
    rtol = out_spec.rtol if out_spec.rtol is not None else rtol
    return (
        config.atol if config.atol is not None else atol,
        config.rtol if config.rtol is not None else rtol,
    )


def run_parity(
    module: torch.nn.Module,
    onnx_path: str | Path,
    spec: ModelSpec,
    config: ParityConfig | None = None,
    *,
    progress: Progress = no_progress,
) -> ParityReport:
    """Compare the ONNX file against ``module`` at every shape point; never raises on mismatch.

    ``progress`` counts points done; after the first point a note estimates the others' time."""
    config = config or ParityConfig()
    points = shape_points(spec, config)
    for _, point in points:  # a feed larger than memory is refused before any is allocated
        check_fits_memory(spec, point, what="the parity gate")
    names = ", ".join(n for n, _ in points)
    log.info(f"parity gate at {len(points)} shape points: {names} (--parity-points to change)")
    reference = TorchRunner(module, spec)
    report = ParityReport()
    first: tuple[float, int] | None = None  # seconds and feed elements of the first point
    with OnnxModelRunner(Path(onnx_path), spec) as onnx:
        for k, (name, point) in enumerate(points):
            feed = spec.sample_feed(point, seed=config.seed + k)
            shapes = {n: list(v.shape) for n, v in feed.items()}
            size = feed_elements(shapes)
            log.info(f"parity {name}: {format_shapes(shapes)}{_estimate(first, size)}")
            started = time.perf_counter()
            progress(k, len(points))
            try:
                expected = reference.run(feed)
            except Exception as e:  # the eager model itself cannot run at this point of the spec
                message = f"{type(e).__name__}: {_last_line(e)}"
                report.rows.extend(_error_rows(name, shapes, spec, message, "pytorch"))
                continue
            try:
                actual = onnx.run(feed)
            except Exception as e:  # onnxruntime's Fail/InvalidArgument, as the runtime's BackendError
                message = _last_line(e.__cause__ or e)
                report.rows.extend(_error_rows(name, shapes, spec, message, "onnxruntime"))
                continue
            report.rows.extend(parity_rows(name, shapes, expected, actual, spec, config))
            if first is None:
                first = (time.perf_counter() - started, size)
                rest = [feed_elements(_shapes(spec, p)) for _, p in points[1:]]
                if rest and first[0] * sum(rest) / max(size, 1) >= ESTIMATE_NOTE_S:
                    log.info(f"the other {len(rest)} points: {_estimate(first, sum(rest)).strip(' ,()')}")
    progress(len(points), len(points))
    return report


ESTIMATE_NOTE_S = 5.0  # an estimate of the remaining points is noted when they may take longer


def feed_elements(shapes: Mapping[str, Sequence[int]]) -> int:
    """Elements in a feed: what a point's time grows with (convolutions and attention grow faster,
    so an estimate from a smaller point is a lower bound)."""
    return sum(int(np.prod(s)) for s in shapes.values())


def _shapes(spec: ModelSpec, point: ShapePoint) -> dict[str, list[int]]:
    return {i.name: [point[d] if isinstance(d, str) else int(d) for d in i.shape] for i in spec.inputs}


def _estimate(first: tuple[float, int] | None, size: int) -> str:
    """`` (about 40 s, at least)`` from the first point's time scaled by feed size."""
    if first is None:
        return ""
    seconds = first[0] * size / max(first[1], 1)
    return f" (about {seconds:.0f} s or more)" if seconds >= 1 else ""


def parity_rows(
    point: str,
    shapes: dict[str, list[int]],
    expected: Mapping[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    spec: ModelSpec,
    config: ParityConfig,
) -> list[ParityRow]:
    """One row per output of ``expected`` (the reference), compared with ``compare()``."""
    tolerances = {o: Tolerance(*tolerance(spec, o, v.dtype, config)) for o, v in expected.items()}
    (result,) = compare([expected, actual], tolerances=tolerances)
    rows = []
    for c in result.outputs:
        error = None if c.same_shape else f"shape {list(c.actual_shape)} != torch {list(c.reference_shape)}"
        atol, rtol = c.tolerance.atol, c.tolerance.rtol
        rows.append(ParityRow(point, shapes, c.output, c.max_abs, c.max_rel, atol, rtol, c.passed, error))
    return rows


def _last_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[-1][:300] if lines else type(e).__name__


def _error_rows(
    point: str, shapes: dict[str, list[int]], spec: ModelSpec, message: str, failed_in: str
) -> list[ParityRow]:
    return [
        ParityRow(point, shapes, out, None, None, 0, 0, False, message, failed_in)
        for out in spec.output_names
    ]


def format_shapes(shapes: Mapping[str, list[int]]) -> str:
    return ", ".join(f"{n}={'x'.join(map(str, s))}" for n, s in shapes.items())


def _failure_cell(row: ParityRow) -> str:
    where = {"pytorch": "PyTorch raised ", "onnxruntime": "onnxruntime raised "}.get(row.failed_in or "", "")
    return f"FAIL: {where}{row.error}" if row.error else "FAIL"


def format_report(report: ParityReport) -> str:
    """A table: shape point / output / max abs / max rel difference / verdict."""
    header = ("point", "shapes", "output", "max abs", "max rel", "tolerance", "result")
    lines = [header]
    for r in report.rows:
        lines.append(
            (
                r.point,
                format_shapes(r.shapes),
                r.output,
                "-" if r.max_abs is None else f"{r.max_abs:.3g}",
                "-" if r.max_rel is None else f"{r.max_rel:.3g}",
                f"{r.atol:g}+{r.rtol:g}*|ref|",
                "ok" if r.passed else _failure_cell(r),
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    widths[-1] = 0  # the last column is not padded
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in lines
    )
