"""Reading JSON that comes from elsewhere: manifests, ``composition.json``, ``bundle.json``.

These files travel with artifacts (copies to a device, bundles, split exports), so they are read
as untrusted input: a size limit (read in bounded form, so a file that grows is still caught), no
duplicate keys, no NaN/Infinity, bounded nesting, strings and integers. Each failure is one
``ArtifactError`` naming the file and saying what it should have been.

Standard library only: ``mmexport.runtime`` reads these files without torch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mmexport.core.errors import ArtifactError

MAX_DEPTH = 32  # written manifests nest 7 deep
MAX_STRING_CHARS = 1 << 20
MAX_INTEGER = 2**63 - 1  # what any consumer (numpy, onnxruntime, TensorRT) can hold


def read_json_limited(path: str | Path, *, what: str, max_bytes: int, where: str | None = None) -> Any:
    """The JSON in ``path``, read as untrusted input; see the module docstring.

    ``what`` names what the caller reads ("an mmexport manifest"), for messages such as
    "is larger than 16 MiB; not an mmexport manifest"; ``where`` names the file in errors
    (default: ``path``)."""
    path = Path(path)
    where = str(path) if where is None else where
    if not path.is_file():
        raise ArtifactError(where, f"is not a file; {what} is a JSON file")
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise ArtifactError(where, f"cannot be read: {e.strerror}") from e
    if len(raw) > max_bytes:
        raise ArtifactError(where, f"is larger than {_size(max_bytes)}; not {what}")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        raise ArtifactError(where, f"is nested deeper than {MAX_DEPTH} levels; not {what}") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, too many digits, the hooks below
        raise ArtifactError(where, f"is not valid JSON ({e})") from e
    check_tree(data, where, what=what)
    return data


def check_tree(data: Any, where: str, *, what: str) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH, strings longer than MAX_STRING_CHARS and
    integers beyond 64 bits (walked without recursion)."""
    problem = tree_problem(data)
    if problem is not None:
        raise ArtifactError(where, problem if "nested" not in problem else f"{problem}; not {what}")


def tree_problem(data: Any) -> str | None:
    """What makes parsed JSON unfit for mmexport (see ``check_tree``), or None; shared by the
    readers that raise their own error class (spec files, ``index.jsonl``)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                return f"is nested deeper than {MAX_DEPTH} levels"
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
        elif isinstance(value, str) and len(value) > MAX_STRING_CHARS:
            return f"holds a string longer than {MAX_STRING_CHARS} characters"
        elif type(value) is int and abs(value) > MAX_INTEGER:
            return f"holds an integer out of range ({str(value)[:20]}...)"
    return None


def loads_limited(text: str | bytes, *, pairs_hook: Any = None) -> Any:
    """``json.loads`` whose failures are all ValueError: nesting too deep for the parser and
    integers too long to convert say so in words (no RecursionError, no Python-internal advice).
    Keys given twice are refused unless ``pairs_hook`` replaces that check."""
    try:
        return json.loads(
            text,
            object_pairs_hook=pairs_hook or _unique_keys,
            parse_constant=_no_constant,
            parse_int=_bounded_int,
        )
    except RecursionError:
        raise ValueError(f"is nested deeper than {MAX_DEPTH} levels") from None


def check_format(data: Any, where: str, *, name: str, newest: int, what: str) -> dict[str, Any]:
    """``data`` as an object whose ``format`` is ``name`` and whose ``format_version`` is a
    version from 1 to ``newest``; a newer one asks for a newer mmexport."""
    if not isinstance(data, dict) or data.get("format") != name:
        raise ArtifactError(where, f"is not {what} ('format' is not {name!r})")
    version = data.get("format_version")
    if type(version) is not int or not 1 <= version <= newest:
        kind = name.rpartition(".")[2]
        newer = type(version) is int and version > newest
        raise ArtifactError(
            where,
            f"has {kind} format version {version!r:.40}; this mmexport reads up to {newest}",
            hint="upgrade mmexport" if newer else None,
        )
    return data


def dumps_finite(data: Any) -> str:
    """``data`` as indented JSON that ``read_json_limited`` reads back: NaN and infinities become null.

    A figure that came out NaN (e.g. a cosine of an all-zero output) must not make the file
    unreadable: plain ``json.dumps`` writes ``NaN``, which is not JSON and is refused on reading.
    """
    return json.dumps(_finite(data), indent=2, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"


def _bounded_int(text: str) -> int:
    """``json.loads`` hook: integers of at most 20 digits (more cannot fit 64 bits, and Python
    refuses to convert very long ones with an error that speaks of its own settings)."""
    if len(text.lstrip("-")) > 20:
        raise ValueError(f"holds an integer of {len(text)} digits ({text[:20]}...), beyond 64 bits")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: an object whose keys are all different."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    """``json.loads`` hook: NaN, Infinity and -Infinity are not JSON."""
    raise ValueError(f"{name} is not JSON")
