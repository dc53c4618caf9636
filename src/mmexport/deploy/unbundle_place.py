"""Where ``unbundle`` puts a verified bundle: a new or empty folder, or (``--overwrite``) over an
earlier unpacked bundle, whose own files alone are replaced; checked at the start and again just
before the move, so that a folder that appeared meanwhile is never replaced."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from mmexport.core.errors import ArtifactError
from mmexport.core.files import ASIDE_SUFFIX, INTERRUPTED, restore_foreign
from mmexport.deploy import bundle_script
from mmexport.deploy.bundle_json import BUNDLE_JSON, read_bundle_json

log = logging.getLogger(__name__)


def check_destination(archive: Path, output: Path, overwrite: bool, *, again: bool = False) -> None:
    """Refuse an output that is not a new or empty folder, or an earlier bundle with --overwrite;
    ``again``: the same check just before publishing (a folder may have appeared meanwhile)."""
    if not output.exists():
        return
    if not output.is_dir():
        raise ArtifactError(str(output), "exists and is not a folder")
    if not any(output.iterdir()):
        return
    if not overwrite:
        what = (
            "appeared while the bundle was unpacked and is not empty" if again else "exists and is not empty"
        )
        raise ArtifactError(str(output), what, hint="pass --overwrite to replace it")
    if not (output / BUNDLE_JSON).is_file():
        raise ArtifactError(
            str(output), f"is not an unpacked bundle (no {BUNDLE_JSON}); --overwrite replaces only those"
        )
    if _within(archive, output):
        raise ArtifactError(
            str(archive),
            f"lies inside {output}, which --overwrite replaces (it would be deleted with it)",
            hint="move the archive out of that folder first",
        )
    if _within(Path.cwd(), output):
        raise ArtifactError(
            str(output),
            "holds the current folder, and --overwrite replaces the folder itself",
            hint=f"run it from outside that folder, e.g. from {output.parent}",
        )


def _within(path: Path, folder: Path) -> bool:
    path, folder = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return path == folder or folder in path.parents


def publish_unpacked(content: Path, output: Path, archive: Path, overwrite: bool) -> None:
    """Move the verified folder into place. An existing empty folder is kept and filled (it may be
    the current folder, or a mount point). An earlier bundle (--overwrite) is moved aside, the new
    one moved in, then the earlier bundle's own files removed and anything else moved back: nothing
    that bundle.json did not list (or build.sh did not write) is removed."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt
    if output.is_dir() and not any(output.iterdir()):
        _fill(content, output)
        return
    if output.exists() or output.is_symlink():
        check_destination(archive, output, overwrite, again=True)
        owned = bundle_owned(output)
        aside = Path(
            tempfile.mkdtemp(prefix=f".{output.name}.{os.getpid()}.", suffix=ASIDE_SUFFIX, dir=output.parent)
        )
        try:
            os.replace(output, aside)
            os.replace(content, output)
        except BaseException:
            if not output.exists():
                os.replace(aside, output)
            with contextlib.suppress(OSError):
                aside.rmdir()
            raise
        kept = restore_foreign(aside, output, owned)
        if kept:
            log.warning(f"kept {', '.join(kept)}, which the new bundle would have replaced, in {aside}")
        return
    try:
        os.rename(content, output)
    except OSError as e:  # a folder that appeared meanwhile, with files in it
        raise ArtifactError(str(output), "appeared while the bundle was unpacked; left as it is") from e


def bundle_owned(folder: Path) -> Callable[[str], bool]:
    """Whether a path in an unpacked bundle was written by mmexport: bundle.json, what it lists,
    and what build.sh writes (engines/)."""
    try:
        listed = {f["path"] for f in read_bundle_json(folder, str(folder))["files"]}
    except ArtifactError:
        listed = set()
    listed.add(BUNDLE_JSON)
    build_output = bundle_script.TIMING_CACHE.split("/", 1)[0]
    return lambda name: name in listed or name == build_output or name.startswith(build_output + "/")


def _fill(content: Path, folder: Path) -> None:
    """Move what ``content`` holds into the empty ``folder``, one rename per entry; back on failure."""
    moved: list[Path] = []
    try:
        for entry in sorted(content.iterdir()):
            target = folder / entry.name
            if target.exists() or target.is_symlink():
                raise ArtifactError(str(target), "appeared while the bundle was unpacked; left as it is")
            os.rename(entry, target)
            moved.append(target)
    except BaseException:
        for target in reversed(moved):
            os.rename(target, content / target.name)
        raise
