"""What ``SplitSession`` checks besides each part's feeds: its parts against their ONNX files at load,
which modalities a call gives, and its cache arguments."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import numpy as np

from mmexport.core.errors import ArtifactError, InputError
from mmexport.core.spec import ModelSpec
from mmexport.runtime.session import Session
from mmexport.split.composition import Composition, Part, Wire


def check_presence(spec: ModelSpec, encoders: list[Part], feeds: Mapping[str, np.ndarray]) -> None:
    """Each encoder gets all of its model inputs or none; none only where its absence is declared."""
    for part in encoders:
        given = [n for n in part.model_inputs if n in feeds]
        if given and len(given) < len(part.model_inputs):
            absent = next(n for n in part.model_inputs if n not in feeds)
            raise InputError(
                absent,
                f"is missing while {given[0]!r} is given; part {part.name!r} takes "
                f"{', '.join(part.model_inputs)}: give all of them or none",
                expected=part.model_inputs,
                actual=given,
            )
        if not given and part.absent is None:
            raise InputError(
                part.model_inputs[0],
                f"is missing and part {part.name!r} ({_modality(spec, part)}) declares no behaviour "
                f"when absent; declared: {_declared(encoders)}",
                hint="give the input, or export a model whose split_parts() declares its absence",
            )


def _modality(spec: ModelSpec, part: Part) -> str:
    return "/".join(sorted({spec.input(n).modality for n in part.model_inputs}))


def _declared(encoders: list[Part]) -> str:
    declared = [f"{p.name} ({p.absent.kind})" for p in encoders if p.absent is not None]
    return ", ".join(declared) or "none (every modality must be given)"


def cached_parts(composition: Composition, cache: bool | str | Iterable[str]) -> list[str]:
    """The parts ``cache`` asks for (True: every encoder; a name or names): encoders only, i.e.
    parts fed by model inputs alone."""
    cacheable = [p.name for p in composition.parts if all(w.kind == "input" for w in p.inputs.values())]
    if isinstance(cache, bool):
        return cacheable if cache else []
    if not isinstance(cache, (str, Iterable)):
        raise InputError(None, f"cache must be True, False or part names, got {type(cache).__name__}")
    asked = [cache] if isinstance(cache, str) else list(cache)
    unknown = [p for p in asked if p not in cacheable]
    if unknown:
        raise InputError(None, f"cache names part {unknown[0]!r}; cacheable parts: {', '.join(cacheable)}")
    return list(dict.fromkeys(asked))


def check_cache_keys(cache_keys: Mapping[str, Any] | None, cached: Collection[str]) -> Mapping[str, Any]:
    """``cache_keys`` name cached parts, with hashable keys."""
    if not cache_keys:
        return {}
    if not cached:
        raise InputError(None, "cache_keys given, but this SplitSession was opened without cache=True")
    unknown = sorted(k for k in cache_keys if k not in cached)
    if unknown:
        raise InputError(None, f"cache_keys names part {unknown[0]!r}; cached parts: {', '.join(cached)}")
    for part, key in cache_keys.items():
        try:
            hash(key)
        except TypeError:
            raise InputError(
                None,
                f"cache_keys[{part!r}] must be hashable (e.g. a str or an int), got {type(key).__name__}",
            ) from None
    return cache_keys


def check_parts(c: Composition, sessions: Mapping[str, Session], where: str) -> None:
    """Each part's wiring against its own spec: every input wired, no unknown name, outputs exist."""
    for i, part in enumerate(c.parts):
        spec = sessions[part.name].spec
        wired, takes = set(part.inputs), set(spec.input_names)
        if wired != takes:
            name = sorted(wired - takes)[0] if wired - takes else sorted(takes - wired)[0]
            problem = "is not an input of" if name in wired else "is not wired, but is an input of"
            raise ArtifactError(
                where,
                f"field 'parts[{i}].inputs.{name}': {name!r} {problem} {part.file} "
                f"(it takes {', '.join(spec.input_names)})",
            )
        unknown = [o for o in part.outputs if o not in spec.output_names]
        if unknown:
            raise ArtifactError(
                where,
                f"field 'parts[{i}].outputs': {unknown[0]!r} is not an output of {part.file} "
                f"(it has {', '.join(spec.output_names)})",
            )
        for name, wire in part.inputs.items():
            _check_constant(c, wire, spec, name, part.file, where)


def _check_constant(c: Composition, wire: Wire, spec: ModelSpec, name: str, file: str, where: str) -> None:
    """A null embedding must be one sample of the input it stands in for: same dtype, the fixed
    sizes after the batch axis."""
    source = c.part(wire.name).absent if wire.kind == "part" else None
    if source is None or source.kind != "constant":
        return
    value, expected = source.values[wire.output or ""], spec.input(name)
    sample = expected.shape[1:]
    fits = value.dtype.name == expected.dtype and value.ndim == len(sample)
    if not fits or any(isinstance(d, int) and d != n for d, n in zip(sample, value.shape, strict=False)):
        index = c.parts.index(c.part(wire.name))
        shape = ", ".join(map(str, expected.shape))
        raise ArtifactError(
            where,
            f"field 'parts[{index}].absent.values.{wire.output}': {value.dtype.name} {list(value.shape)} "
            f"does not fit input {name!r} of {file} ({expected.dtype} [{shape}])",
        )


__all__ = ["cached_parts", "check_cache_keys", "check_parts", "check_presence"]
