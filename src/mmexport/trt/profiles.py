"""Optimization profiles: min/opt/max shapes per input, derived from the spec's named dims.

Every profile is a point per named dim (``batch`` 1/4/32 ...) turned into shapes, so inputs that
share a dim always agree. ``--profile batch=1:1:1,seq=8:16:32`` adds one more profile, with the
named dims overridden and the others kept at the spec's range; values must stay inside the spec's
range (the range the exported graph was checked on).
"""

from __future__ import annotations

from dataclasses import dataclass

from mmexport.core.errors import MmexportError
from mmexport.core.spec import ModelSpec, Shape

PROFILE_SYNTAX = "DIM=MIN:OPT:MAX[,DIM=MIN:OPT:MAX...]"
STATIC_AT = ("min", "opt", "max")


@dataclass(frozen=True)
class DimRange:
    min: int
    opt: int
    max: int


@dataclass(frozen=True)
class Profile:
    """One TensorRT optimization profile: a range per named dim, and the shapes it gives."""

    dims: dict[str, DimRange]
    shapes: dict[str, tuple[Shape, Shape, Shape]]  # input -> (min, opt, max)

    @property
    def dynamic(self) -> bool:
        return any(lo != hi for lo, _, hi in self.shapes.values())

    def to_dict(self) -> dict[str, list[list[int]]]:
        """``{input: [min, opt, max]}``, the form of EngineInfo.profiles."""
        return {name: [list(s) for s in shapes] for name, shapes in self.shapes.items()}


def profile_from_dims(spec: ModelSpec, dims: dict[str, DimRange]) -> Profile:
    points = {which: {n: getattr(r, which) for n, r in dims.items()} for which in STATIC_AT}
    shapes = {
        inp.name: (
            inp.concrete_shape(points["min"]),
            inp.concrete_shape(points["opt"]),
            inp.concrete_shape(points["max"]),
        )
        for inp in spec.inputs
    }
    return Profile(dims, shapes)


def spec_dims(spec: ModelSpec) -> dict[str, DimRange]:
    return {name: DimRange(d.min, d.opt, d.max) for name, d in spec.dims.items()}


def spec_profile(spec: ModelSpec) -> Profile:
    """The profile of the spec's own ranges."""
    return profile_from_dims(spec, spec_dims(spec))


def parse_profile(text: str, spec: ModelSpec) -> Profile:
    """A profile from ``--profile`` text (PROFILE_SYNTAX); unnamed dims keep the spec's range."""
    dims = spec_dims(spec)
    for item in (part.strip() for part in text.split(",")):
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or name not in dims:
            known = ", ".join(spec.dims) or "none"
            raise MmexportError(
                f"--profile {text!r}: {item!r} is not DIM=MIN:OPT:MAX for a named dim",
                hint=f"syntax {PROFILE_SYNTAX}; named dims: {known}",
            )
        dims[name] = _parse_range(text, name, values, spec)
    return profile_from_dims(spec, dims)


def _parse_range(text: str, name: str, values: str, spec: ModelSpec) -> DimRange:
    parts = values.split(":")
    try:
        lo, mid, hi = (int(p) for p in parts) if len(parts) == 3 else (int(values),) * 3
    except ValueError:
        raise MmexportError(
            f"--profile {text!r}: {name}={values} is not MIN:OPT:MAX integers (or one integer)",
            hint=f"syntax {PROFILE_SYNTAX}",
        ) from None
    if not lo <= mid <= hi:
        raise MmexportError(f"--profile {text!r}: {name} needs min <= opt <= max, got {lo}:{mid}:{hi}")
    allowed = spec.dims[name]
    if lo < allowed.min or hi > allowed.max:
        raise MmexportError(
            f"--profile {text!r}: {name} {lo}..{hi} leaves the spec's range {allowed.min}..{allowed.max}",
            hint="the ONNX was checked against PyTorch inside the spec's range only; widen it and re-export",
        )
    return DimRange(lo, mid, hi)


def static_profile(profile: Profile, spec: ModelSpec, at: str = "opt") -> Profile:
    """``profile`` fixed at one of its points (min = opt = max), as DLA needs."""
    if at not in STATIC_AT:
        raise MmexportError(f"static shapes at {at!r}: choose one of {', '.join(STATIC_AT)}")
    dims = {n: DimRange(*(getattr(r, at),) * 3) for n, r in profile.dims.items()}
    return profile_from_dims(spec, dims)


def build_profiles(
    spec: ModelSpec, extra: tuple[str, ...] = (), *, static_at: str | None = None
) -> list[Profile]:
    """The spec's profile first (profile 0), then one per ``--profile``; all static if asked."""
    profiles = [spec_profile(spec), *(parse_profile(text, spec) for text in extra)]
    if static_at is not None:
        profiles = [static_profile(p, spec, static_at) for p in profiles]
    unique: list[Profile] = []
    for profile in profiles:
        if profile.shapes not in [u.shapes for u in unique]:
            unique.append(profile)
    return unique
