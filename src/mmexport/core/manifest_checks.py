"""A manifest's top-level fields as read from disk: present where required, of their type, and
no other (a manifest travels with its artifact and is read as untrusted)."""

from __future__ import annotations

import re
from typing import Any

from mmexport.core.errors import ArtifactError

FORMAT_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEXT_FIELDS = ("kind", "precision")
_OBJECT_FIELDS = ("producer", "validation", "source")
KEYS = frozenset(
    (
        "format",
        "format_version",
        "kind",
        "artifact",
        "sha256",
        "precision",
        "created",
        "spec",
        *_OBJECT_FIELDS,
    )
)


def check_fields(data: dict[str, Any], where: str) -> None:
    """Every top-level field present where required, of its type, and no other."""
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise ArtifactError(
            where,
            f"manifest has unknown key {unknown[0]!r} (format version {FORMAT_VERSION} has "
            f"{', '.join(sorted(KEYS))})",
        )
    for key in ("kind", "artifact", "sha256", "spec", "precision"):
        if key not in data:
            raise ArtifactError(where, f"manifest lacks {key!r}")
    for key in _TEXT_FIELDS:
        if not isinstance(data[key], str) or not data[key]:
            raise ArtifactError(where, f"manifest {key!r} must be a non-empty string, got {data[key]!r}")
    name = data["artifact"]
    if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ArtifactError(where, f"manifest 'artifact' must be a file name without a folder, got {name!r}")
    if not isinstance(data["sha256"], str) or not _SHA256.fullmatch(data["sha256"]):
        raise ArtifactError(
            where, f"manifest 'sha256' must be 64 lowercase hex digits, got {data['sha256']!r}"
        )
    if not isinstance(data.get("created", ""), str):
        raise ArtifactError(where, f"manifest 'created' must be a string, got {data['created']!r}")
    for key in _OBJECT_FIELDS:
        if not isinstance(data.get(key, {}), dict):
            raise ArtifactError(where, f"manifest {key!r} must be an object, got {_shown(data[key])}")
    _check_parity(data.get("validation", {}).get("parity"), where)


def _check_parity(parity: Any, where: str) -> None:
    """``validation.parity``, which ``inspect`` reads: an object whose ``passed`` is true, false or
    null and whose ``rows`` are objects naming their ``point``."""
    if parity is None:
        return
    if not isinstance(parity, dict):
        raise ArtifactError(where, f"manifest 'validation.parity' must be an object, got {_shown(parity)}")
    if parity.get("passed") is not None and not isinstance(parity["passed"], bool):
        shown = _shown(parity["passed"])
        raise ArtifactError(where, f"manifest 'validation.parity.passed' must be true or false, got {shown}")
    rows = parity.get("rows", [])
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and isinstance(r.get("point", ""), str) for r in rows
    ):
        raise ArtifactError(
            where, "manifest 'validation.parity.rows' must be a list of objects whose 'point' is a string"
        )


def _shown(value: Any, most: int = 60) -> str:
    """``value`` as a manifest error quotes it: its repr, cut to ``most`` characters."""
    text = repr(value)
    return text if len(text) <= most else text[: most - 3] + "..."
