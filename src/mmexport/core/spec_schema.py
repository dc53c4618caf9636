"""The vocabulary of the spec file (modalities, dtypes, allowed keys) and the small JSON checks
that its parsers share, kept apart so that the preprocess schema can use them too. numpy-free."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mmexport.core.errors import SpecError
from mmexport.core.json_limits import loads_limited, tree_problem

MODALITIES = ("image", "text", "audio", "sensor", "tensor")
DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")
FLOAT_DTYPES = ("float32", "float16", "float64")
INT_DTYPES = ("int64", "int32", "int8", "uint8")

INPUT_KEYS = {"name", "modality", "dtype", "shape", "range", "preprocess", "mask_of"}
OUTPUT_KEYS = {"name", "labels", "atol", "rtol", "shape"}
DIM_KEYS = {"min", "opt", "max"}
SPEC_KEYS = {"inputs", "outputs", "dims", "call_kwargs"}


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: a key given twice in one object is an error, not the last one wins."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise SpecError(f"key {key!r} appears twice in one object", hint="JSON keeps only the last")
        seen[key] = value
    return seen


def parse_spec_json(text: str, *, source: str = "spec") -> Any:
    """The JSON of a spec file, read as untrusted input: any failure (syntax, a key twice, nesting
    deeper than the parser goes, integers beyond 64 bits) is one SpecError naming ``source``."""
    try:
        data = loads_limited(text, pairs_hook=reject_duplicate_keys)
    except json.JSONDecodeError as e:
        raise SpecError(f"{source} is not valid JSON: {e}") from e
    except ValueError as e:  # nesting or integers, in words
        raise SpecError(f"{source} {e}") from None
    problem = tree_problem(data)
    if problem is not None:
        raise SpecError(f"{source} {problem}")
    return data


def no_unknown_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """Refuse the first key outside ``allowed`` (a typo would otherwise be silently ignored)."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SpecError(
            f"unknown key {unknown[0]!r}",
            where=where,
            hint=f"allowed: {', '.join(sorted(allowed))}",
        )


def is_int(value: Any) -> bool:
    """An integer, and not a bool (JSON's true would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)
