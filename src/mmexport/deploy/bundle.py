"""``mmexport bundle`` / ``unbundle``: what a device needs to build and run TensorRT engines itself.

A bundle is a ``.tar.gz`` of regular files, no top folder:

- ``models/``: the ONNX files, their manifests, external data and native calibration caches;
- ``build.sh``: builds every engine on the device (``mmexport build``, else trtexec);
- ``requirements.txt`` and ``README.txt`` for the target's software stack;
- ``SHA256SUMS`` (for ``sha256sum -c`` where mmexport is not installed) and ``bundle.json``
  (format, target, creation time, mmexport version, every file with size, sha256 and the
  artifact it belongs to), written last.

Unpacking checks every member before writing anything, extracts into a staging folder beside the
output, verifies every file against bundle.json and every artifact against its own manifest, and
only then moves the folder into place.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import mmexport
from mmexport.core.artifact import LoadedArtifact
from mmexport.core.errors import ArtifactError, MmexportError
from mmexport.core.files import (
    output_folder,
    sha256_file,
    staging_dir,
    uninterrupted,
)
from mmexport.core.manifest import read_manifest
from mmexport.deploy import bundle_script
from mmexport.deploy.archive import (
    DEFAULT_LIMITS,
    ArchiveLimits,
    ArchiveWriter,
    Entry,
    check_member_name,
    extract,
    shown,
)
from mmexport.deploy.bundle_artifacts import BundledArtifact, ChecksumError, collect_artifact
from mmexport.deploy.bundle_json import BUNDLE_JSON, FORMAT, FORMAT_VERSION, read_bundle_json
from mmexport.deploy.bundle_targets import BundleTarget, get_bundle_target
from mmexport.deploy.unbundle_place import bundle_owned, check_destination, publish_unpacked

log = logging.getLogger(__name__)

CHECKSUMS = "SHA256SUMS"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
NEXT_STEP = "bash build.sh"


@dataclass
class BundleResult:
    path: Path
    target: BundleTarget
    bundle: dict[str, Any]  # bundle.json's content
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        archive = shlex.quote(self.path.name)
        return {
            "path": str(self.path),
            "bytes": self.bytes,
            "sha256": sha256_file(self.path),
            "target": self.bundle["target"],
            "artifacts": [
                {k: a[k] for k in ("onnx", "precision", "engine", "calibration_cache")}
                for a in self.bundle["artifacts"]
            ],
            "files": self.bundle["files"],
            "next": f"copy {self.path.name} to the device; mmexport unbundle {archive} -o DIR",
        }


@dataclass
class UnbundleResult:
    folder: Path
    bundle: dict[str, Any]

    @property
    def next_step(self) -> str:
        return f"cd {shlex.quote(str(self.folder))} && {NEXT_STEP}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "target": self.bundle["target"],
            "created": self.bundle["created"],
            "mmexport_version": self.bundle["mmexport_version"],
            "files": self.bundle["files"],
            "artifacts": [
                {k: a[k] for k in ("onnx", "precision", "engine", "calibration_cache")}
                for a in self.bundle["artifacts"]
            ],
            "verified": True,
            "next": self.next_step,
        }


def make_bundle(
    artifacts: Sequence[str | Path | LoadedArtifact],
    target: str,
    output: str | Path,
    *,
    overwrite: bool = False,
) -> BundleResult:
    """Pack ``artifacts`` (ONNX files with manifests) for ``target`` into the archive ``output``."""
    bundle_target = get_bundle_target(target)
    output = Path(output)
    _check_output(output, overwrite)
    if not artifacts:
        raise MmexportError("give at least one ONNX artifact to bundle")
    collected = [collect_artifact(p) for p in artifacts]
    names = _check_names(collected)
    created = datetime.now(timezone.utc).replace(microsecond=0)
    header = f"Made by mmexport {mmexport.__version__} on {created.isoformat()}."
    texts = [
        Entry(
            "README.txt", data=_utf8(bundle_script.readme_text(bundle_target, collected, header, output.name))
        ),
        Entry(
            "build.sh",
            data=_utf8(bundle_script.build_script(bundle_target, collected, header)),
            executable=True,
        ),
        Entry("requirements.txt", data=_utf8(bundle_script.requirements_text(bundle_target, header))),
    ]
    with output_folder(output) as out, ArchiveWriter(out, mtime=int(created.timestamp())) as writer:
        for entry in texts:
            writer.add(entry)
        for artifact in collected:
            log.info(f"packing {artifact.name} ({artifact.precision})")
            if writer.add(Entry(artifact.name, source=artifact.path)) != artifact.sha256:
                raise ArtifactError(str(artifact.path), "changed while it was being packed")
            for companion in artifact.companions:
                writer.add(Entry(companion.name, source=companion.path))
        writer.add(Entry(CHECKSUMS, data=_utf8(bundle_script.checksums_text(writer.hashes))))
        bundle = _bundle_json(bundle_target, collected, names, writer, created)
        writer.add(Entry(BUNDLE_JSON, data=_utf8(json.dumps(bundle, indent=2) + "\n")))
    return BundleResult(out, bundle_target, bundle, out.stat().st_size)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _check_output(output: Path, overwrite: bool) -> None:
    if not output.name.endswith(ARCHIVE_SUFFIXES):
        raise ArtifactError(str(output), "a bundle is a gzip tar archive", hint="name it NAME.tar.gz")
    if output.is_dir():
        raise ArtifactError(
            str(output), "is a folder; give the archive's file name", hint="e.g. -o orin.tar.gz"
        )
    if output.exists() and not overwrite:
        raise ArtifactError(str(output), "exists already", hint="pass --overwrite to replace it")


def _check_names(artifacts: list[BundledArtifact]) -> dict[str, str]:
    """Bundle name -> the artifact it belongs to; refuse two files that would get one name, and a
    name that unbundle refuses (control characters break SHA256SUMS lines too)."""
    owners: dict[str, str] = {}
    paths: dict[str, Path] = {}
    for artifact in artifacts:
        files = [(artifact.name, artifact.path)] + [(c.name, c.path) for c in artifact.companions]
        for name, path in files:
            problem = check_member_name(name)
            if problem is not None:
                raise ArtifactError(str(path), f"would be stored as {name!r}, which {problem}")
            if name in paths:
                same = paths[name].resolve() == path.resolve()
                raise ArtifactError(
                    str(path),
                    "is given twice" if same else f"would be stored as {name}, like {paths[name]}",
                    hint=None if same else "rename one of them: a bundle keeps one flat models/ folder",
                )
            paths[name] = path
            owners[name] = artifact.name
    return owners


def _bundle_json(
    target: BundleTarget,
    artifacts: list[BundledArtifact],
    owners: dict[str, str],
    writer: ArchiveWriter,
    created: datetime,
) -> dict[str, Any]:
    roles = {a.name: "onnx" for a in artifacts}
    roles.update({c.name: c.role for a in artifacts for c in a.companions})
    files = [
        {
            "path": name,
            "bytes": writer.sizes[name],
            "sha256": digest,
            "role": roles.get(name, "checksums" if name == CHECKSUMS else "bundle"),
            "artifact": owners.get(name),
        }
        for name, digest in writer.hashes.items()
    ]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": created.isoformat(),
        "mmexport_version": mmexport.__version__,
        "target": target.to_dict(),
        "artifacts": [a.to_dict(target.trt_target) for a in artifacts],
        "files": files,
        "next": NEXT_STEP,
    }


# -- unpacking ------------------------------------------------------------------------------------


def unbundle(
    archive: str | Path,
    output: str | Path,
    *,
    overwrite: bool = False,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> UnbundleResult:
    """Check, extract and verify ``archive`` into the folder ``output``; nothing is left on failure."""
    archive, output = Path(archive), Path(output)
    check_destination(archive, output, overwrite)
    place = Path(os.path.abspath(output))  # "." has no name to stage beside
    missing = [p for p in [place.parent, *place.parent.parents] if not p.exists()]
    try:
        try:
            place.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ArtifactError(str(output.parent), f"cannot create the output folder: {e.strerror}") from e
        with staging_dir(place, owned_in=bundle_owned) as stage:
            content = stage / "content"
            members = extract(archive, content, limits)
            log.info(f"extracted {len(members)} members; verifying every sha256")
            bundle = verify_folder(content, where=str(archive))
            with uninterrupted():
                publish_unpacked(content, place, archive, overwrite)
    except BaseException:
        for folder in missing:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return UnbundleResult(output, bundle)


def verify_folder(folder: Path, *, where: str | None = None) -> dict[str, Any]:
    """Check an unpacked bundle: bundle.json, every file's size and sha256, every artifact's manifest.

    Returns bundle.json's content. ``where`` names the archive in errors.
    """
    where = where or str(folder)
    bundle = read_bundle_json(folder, where)
    listed = {f["path"]: f for f in bundle["files"]}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    present.discard(BUNDLE_JSON)
    extra, lacking = sorted(present - listed.keys()), sorted(listed.keys() - present)
    if extra:
        raise ArtifactError(where, f"holds {', '.join(extra)}, which {BUNDLE_JSON} does not list")
    if lacking:
        raise ArtifactError(where, f"lacks {', '.join(lacking)}, which {BUNDLE_JSON} lists")
    for name, entry in listed.items():
        path = folder / name
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise ChecksumError(name, entry["sha256"], actual, recorded_in=BUNDLE_JSON)
        if path.stat().st_size != entry["bytes"]:
            raise ArtifactError(name, f"is {path.stat().st_size} bytes; {BUNDLE_JSON} says {entry['bytes']}")
    for artifact in bundle["artifacts"]:
        _verify_artifact(folder, artifact, listed, where)
    return bundle


def _verify_artifact(folder: Path, artifact: Any, listed: dict[str, Any], where: str) -> None:
    """The artifact's sha256 against its own manifest (and its external data's, where recorded)."""
    name = artifact["onnx"]  # a string: read_bundle_json checked
    if name not in listed or f"{name}.json" not in listed:
        missing = "file" if name not in listed else "manifest"
        raise ArtifactError(where, f"{BUNDLE_JSON} names artifact {shown(name)}, whose {missing} it lacks")
    manifest = read_manifest(folder / name)
    if manifest is None:  # unreachable: the manifest is listed, so it exists
        raise ArtifactError(name, "has no manifest")
    actual = listed[name]["sha256"]
    if manifest.sha256 != actual:
        raise ChecksumError(name, manifest.sha256, actual, recorded_in=f"its manifest {name}.json")
    recorded = manifest.producer.external_data
    if recorded is not None and isinstance(recorded.get("file"), str):
        data = f"{name.rsplit('/', 1)[0]}/{recorded['file']}"
        if data in listed and listed[data]["sha256"] != recorded.get("sha256"):
            raise ChecksumError(
                data, str(recorded.get("sha256")), listed[data]["sha256"], recorded_in=f"{name}.json"
            )
    cache = manifest.producer.calibration_cache
    cache_name = artifact.get("calibration_cache")
    recorded_cache = cache.get("sha256") if cache is not None else None
    if (
        isinstance(recorded_cache, str)
        and cache_name in listed
        and listed[cache_name]["sha256"] != recorded_cache
    ):
        raise ChecksumError(
            cache_name, recorded_cache, listed[cache_name]["sha256"], recorded_in=f"{name}.json"
        )
