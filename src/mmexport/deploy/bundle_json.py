"""``bundle.json``, the listing of a bundle, read as untrusted input.

It comes out of an archive from elsewhere, so it is read like a manifest: bounded size, nesting,
strings and integers, no duplicate keys or NaN (``mmexport.core.json_limits``), and every field
``unbundle`` and the CLI use is checked for its type, so that a hand-edited listing is one error
line, not a traceback after every file was verified.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmexport.core.errors import ArtifactError
from mmexport.core.json_limits import check_format, read_json_limited
from mmexport.deploy.archive import check_member_name, shown

FORMAT = "mmexport.bundle"
FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
MAX_BUNDLE_JSON_BYTES = 16 << 20
ARTIFACT_TEXT_FIELDS = ("onnx", "precision", "engine")
WHAT = "an mmexport bundle manifest"


def read_bundle_json(folder: Path, where: str) -> dict[str, Any]:
    """``folder/bundle.json``, checked; ``where`` (the archive) names it in errors."""
    path = folder / BUNDLE_JSON
    if not path.exists() and not path.is_symlink():
        raise ArtifactError(where, f"has no {BUNDLE_JSON}; not an mmexport bundle")
    listing = f"{where}: {BUNDLE_JSON}"
    data = read_json_limited(path, what=WHAT, max_bytes=MAX_BUNDLE_JSON_BYTES, where=listing)
    check_format(data, listing, name=FORMAT, newest=FORMAT_VERSION, what=WHAT)
    for key, kind in (("target", dict), ("created", str), ("mmexport_version", str)):
        if not isinstance(data.get(key), kind):
            got = shown(data.get(key))
            raise ArtifactError(where, f"{BUNDLE_JSON}: {key!r} must be {_a(kind)}, got {got}")
    files, artifacts = data.get("files"), data.get("artifacts")
    if not isinstance(files, list) or not isinstance(artifacts, list) or not artifacts:
        raise ArtifactError(where, f"{BUNDLE_JSON} needs a list of files and a non-empty list of artifacts")
    for entry in files:
        _check_file_entry(entry, where)
    for artifact in artifacts:
        _check_artifact_entry(artifact, where)
    return data


def _check_file_entry(entry: Any, where: str) -> None:
    ok = (
        isinstance(entry, dict)
        and isinstance(entry.get("path"), str)
        and isinstance(entry.get("sha256"), str)
        and type(entry.get("bytes")) is int
    )
    if not ok:
        raise ArtifactError(where, f"{BUNDLE_JSON} has an entry without path, bytes, sha256: {shown(entry)}")
    problem = check_member_name(entry["path"])
    if problem is not None or entry["path"] == BUNDLE_JSON:
        raise ArtifactError(
            where, f"{BUNDLE_JSON} lists the file {shown(entry['path'])}, which {problem or 'is itself'}"
        )


def _check_artifact_entry(artifact: Any, where: str) -> None:
    """What unbundle's result shows of each artifact: names as strings, the cache a string or null."""
    if not isinstance(artifact, dict) or not isinstance(artifact.get("onnx"), str):
        raise ArtifactError(where, f"{BUNDLE_JSON} has an artifact without an 'onnx' name: {shown(artifact)}")
    name = shown(artifact["onnx"])
    for key in ARTIFACT_TEXT_FIELDS:
        if not isinstance(artifact.get(key), str):
            raise ArtifactError(where, f"{BUNDLE_JSON}: artifact {name} lacks {key!r} (a string)")
    if not isinstance(artifact.get("calibration_cache"), (str, type(None))):
        raise ArtifactError(where, f"{BUNDLE_JSON}: artifact {name}: 'calibration_cache' is not a name")


def _a(kind: type) -> str:
    return "an object" if kind is dict else "a string"
