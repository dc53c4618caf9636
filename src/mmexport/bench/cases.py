"""Shape cases: which input shapes a benchmark runs, resolved against each artifact's spec.

A case starts from a corner of the spec (``min``, ``opt`` or ``max``: every dim at that value),
then takes concrete shapes given for some inputs (``--shape image=1x3x224x224``: its named
dims follow, so the other inputs agree), then a batch size (the named dim at axis 0 of every
input). Each artifact resolves the case with its own spec, so FP32 and FP16 variants of one
model are measured at the same shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mmexport.core.errors import InputError
from mmexport.core.spec import ModelSpec, ShapePoint

CORNERS = ("min", "opt", "max")


@dataclass(frozen=True)
class ShapeCase:
    """One shape point to measure; ``label`` names it in reports."""

    label: str
    corner: str = "opt"
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    batch: int | None = None


def parse_shapes(text: str) -> dict[str, tuple[int, ...]]:
    """``"image=1x3x64x64,tokens=1x8"`` -> ``{"image": (1, 3, 64, 64), "tokens": (1, 8)}``."""
    out: dict[str, tuple[int, ...]] = {}
    for part in text.split(","):
        name, sep, dims = part.strip().partition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) < 1:
            raise ValueError(f"{part.strip()!r} is not NAME=AxBxC with sizes >= 1")
        out[name] = shape
    return out


def build_cases(
    shapes: Sequence[Mapping[str, tuple[int, ...]]] = (), sweep: bool = False, batches: Sequence[int] = ()
) -> list[ShapeCase]:
    """The cases of ``--shape`` (one case each), ``--sweep`` (min, opt, max), times ``--batch``.

    A case given twice (the same shapes or batch size repeated) is measured once: a second copy
    would compare a target with itself under a second, identical label."""
    base = [ShapeCase(_shape_label(s), shapes=dict(s)) for s in shapes]
    if sweep:
        base += [ShapeCase(c, corner=c) for c in CORNERS]
    base = base or [ShapeCase("opt")]
    if batches:
        base = [ShapeCase(f"{c.label} batch {b}", c.corner, c.shapes, b) for c in base for b in batches]
    return unique_cases(base)


def unique_cases(cases: Sequence[ShapeCase]) -> list[ShapeCase]:
    """``cases`` without repeats (same corner, shapes and batch), first occurrence kept."""
    seen: set[tuple[object, ...]] = set()
    out = []
    for case in cases:
        key = (case.corner, tuple(sorted(case.shapes.items())), case.batch)
        if key not in seen:
            seen.add(key)
            out.append(case)
    return out


def batch_dim(spec: ModelSpec) -> str | None:
    """The named dim at axis 0 of every input, if there is one."""
    firsts = {i.shape[0] if i.shape else None for i in spec.inputs}
    only = firsts.pop() if len(firsts) == 1 else None
    return only if isinstance(only, str) else None


def resolve_point(spec: ModelSpec, case: ShapeCase, *, ranged: bool = True) -> ShapePoint:
    """The value of every named dim for ``case``; ``ranged=False`` (no manifest) needs all given."""
    point = spec.point(case.corner)
    given, source = _given_dims(spec, case)
    if case.batch is not None:
        dim = batch_dim(spec)
        if dim is None:
            raise InputError(None, "a batch size needs a named dim at axis 0 of every input")
        if given.setdefault(dim, case.batch) != case.batch:
            name = source[dim]
            raise InputError(
                name,
                f"--shape {name}={_x(case.shapes[name])} has batch {given[dim]} but --batch is {case.batch}",
                dim=dim,
                hint="give the batch size once: drop --batch, or set it in --shape",
            )
    point.update(given)
    if not ranged:
        unset = [d.name for d in spec.dynamic_dims if d.name not in given]
        if unset:
            raise InputError(
                None,
                f"without a manifest, dim {unset[0]!r} has no opt size",
                hint="give every dynamic size with --shape NAME=AxBxC",
            )
    return point


def _given_dims(spec: ModelSpec, case: ShapeCase) -> tuple[dict[str, int], dict[str, str]]:
    """The named dims the case's shapes set, and which input set each one."""
    given: dict[str, int] = {}
    source: dict[str, str] = {}
    for name, shape in case.shapes.items():
        try:
            inp = spec.input(name)
        except KeyError:
            raise InputError(name, f"is not an input (it takes {', '.join(spec.input_names)})") from None
        if len(shape) != len(inp.shape):
            raise InputError(name, f"shape {_x(shape)} has rank {len(shape)}, the spec {list(inp.shape)}")
        for axis, (want, size) in enumerate(zip(inp.shape, shape, strict=True)):
            if isinstance(want, int) and want != size:
                raise InputError(name, f"axis {axis} must be {want}, got {size}", axis=axis)
            if isinstance(want, str) and given.setdefault(want, size) != size:
                raise InputError(name, f"dim {want!r} is {size} here but {given[want]} elsewhere", dim=want)
            if isinstance(want, str):
                source.setdefault(want, name)
    return given, source


def _x(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def _shape_label(shapes: Mapping[str, tuple[int, ...]]) -> str:
    return ",".join(f"{n}={_x(s)}" for n, s in shapes.items())
