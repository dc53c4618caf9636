"""``compare()``: the outputs of runners (or outputs already computed) against a reference's.

One comparison serves the parity gate, the FP16 check, accuracy's agreement figures and engine
accuracy (Polygraphy's ``Comparator``). Per output: the largest absolute difference, the largest
elementwise relative difference, the worst per-sample cosine similarity, and whether every
element is within ``atol + rtol * |reference|``. numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmexport.runtime.runner import Runner


@dataclass(frozen=True)
class Tolerance:
    """An element passes when ``|actual - reference| <= atol + rtol * |reference|``."""

    atol: float = 0.0
    rtol: float = 0.0


EXACT = Tolerance()


@dataclass(frozen=True)
class OutputComparison:
    """One output of ``actual`` against the reference's.

    ``max_rel`` is elementwise (``|diff| / |reference|``); ``reference_amax`` (the largest
    ``|reference|``) gives a range-relative figure where outputs cross zero. ``sample_cosines``:
    one per sample (along the first axis; all-zero in both: 1; zero in one: 0; a row
    that is not finite never counts as agreeing: 0 or -1);
    ``cosine`` is the worst of them. Different shapes: infinite differences, cosine -1, not passed.
    """

    output: str
    max_abs: float
    max_rel: float
    cosine: float
    passed: bool
    tolerance: Tolerance
    reference_amax: float
    actual_shape: tuple[int, ...]
    reference_shape: tuple[int, ...]
    sample_cosines: np.ndarray = field(repr=False, compare=False)

    @property
    def same_shape(self) -> bool:
        return self.actual_shape == self.reference_shape


@dataclass(frozen=True)
class Comparison:
    """Every output of one runner (or set of outputs) against the reference, in the reference's order."""

    outputs: tuple[OutputComparison, ...]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def output(self, name: str) -> OutputComparison:
        return next(o for o in self.outputs if o.output == name)


Outputs = Mapping[str, np.ndarray]
Tolerances = Tolerance | Mapping[str, Tolerance] | None


def compare(
    runners_or_outputs: Sequence[Runner | Outputs],
    feeds: Mapping[str, np.ndarray] | None = None,
    tolerances: Tolerances = None,
    *,
    equal_nan: bool = True,
) -> list[Comparison]:
    """Each of ``runners_or_outputs[1:]`` against the first (the reference).

    A runner is run on ``feeds``; outputs (``dict[str, numpy.ndarray]``) are taken as they are.
    ``tolerances``: one for every output, or one per output name (absent names: exact), or None
    (exact). An output the reference has and another lacks raises ``KeyError``. ``equal_nan``:
    NaN in both at the same place counts as equal (else as an infinite difference).
    """
    if len(runners_or_outputs) < 2:
        raise ValueError("compare() needs a reference and at least one other runner or outputs")
    results = [_outputs_of(r, feeds) for r in runners_or_outputs]
    reference = results[0]
    out = []
    for actual in results[1:]:
        rows = tuple(
            compare_arrays(np.asarray(actual[n]), np.asarray(ref), _tolerance(tolerances, n), n, equal_nan)
            for n, ref in reference.items()
        )
        out.append(Comparison(rows))
    return out


def compare_arrays(
    actual: np.ndarray,
    reference: np.ndarray,
    tolerance: Tolerance = EXACT,
    output: str = "",
    equal_nan: bool = True,
) -> OutputComparison:
    """The figures of one output (see ``OutputComparison``)."""
    shapes = (tuple(actual.shape), tuple(reference.shape))
    if actual.shape != reference.shape:
        inf, none = float("inf"), np.full(0, -1.0)
        return OutputComparison(output, inf, inf, -1.0, False, tolerance, inf, *shapes, none)
    a = actual.astype(np.float64)
    r = reference.astype(np.float64)
    if a.size == 0:
        cosines = sample_cosines(a, r)
        return OutputComparison(output, 0.0, 0.0, 1.0, True, tolerance, 0.0, *shapes, cosines)
    diff = np.abs(a - r)
    if equal_nan:
        diff = np.where(np.isnan(a) & np.isnan(r), 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)
    rel = diff / np.maximum(np.abs(r), np.finfo(np.float32).tiny)
    rel = np.where(diff == 0, 0.0, rel)
    passed = bool(np.all(diff <= tolerance.atol + tolerance.rtol * np.abs(np.nan_to_num(r))))
    cosines = sample_cosines(a, r)
    return OutputComparison(
        output,
        float(diff.max()),
        float(rel.max()),
        float(cosines.min(initial=1.0)),
        passed,
        tolerance,
        float(np.abs(r).max(initial=0.0)),
        *shapes,
        cosines,
    )


def sample_cosines(actual: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosine similarity per sample (rows along the first axis; a 0-d array is one sample)."""
    rows = actual.shape[0] if actual.ndim else 1
    if rows == 0:
        return np.ones(0)
    a = actual.astype(np.float64, copy=False).reshape(rows, -1)
    r = reference.astype(np.float64, copy=False).reshape(rows, -1)
    norm_a, norm_r = np.linalg.norm(a, axis=1), np.linalg.norm(r, axis=1)
    norms = norm_a * norm_r
    both_zero = (norm_a == 0) & (norm_r == 0)  # identical all-zero outputs agree; one zero does not
    cosine = np.where(norms > 0, (a * r).sum(axis=1) / np.maximum(norms, 1e-300), both_zero * 1.0)
    return np.nan_to_num(cosine, nan=-1.0)


def _outputs_of(item: Runner | Outputs, feeds: Mapping[str, np.ndarray] | None) -> Outputs:
    if isinstance(item, Runner):
        if feeds is None:
            raise ValueError("compare() runs runners on feeds: give feeds")
        return item.run(feeds)
    return item


def _tolerance(tolerances: Tolerances, name: str) -> Tolerance:
    if tolerances is None:
        return EXACT
    if isinstance(tolerances, Tolerance):
        return tolerances
    return tolerances.get(name, EXACT)
