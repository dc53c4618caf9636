"""Writing a split export's folder atomically: staged beside it, then moved into place whole.

Only files an earlier export wrote (``composition.json`` and each part's files, as its
composition lists them) are ever replaced or removed; a folder that also holds anything else
is refused, before any work and again just before the swap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mmexport.core.errors import ArtifactError
from mmexport.core.files import ASIDE_SUFFIX, INTERRUPTED, output_folder, restore_foreign, staging_dir
from mmexport.core.json_limits import read_json_limited
from mmexport.split.composition import FILE_NAME, MAX_BYTES, WHAT, is_composition_folder

log = logging.getLogger(__name__)
PART_COMPANIONS = (".json", ".data")  # a part's manifest and external data: `<file>.json`, `<file>.data`


def owned_names(folder: Path) -> set[str]:
    """The names an earlier export in ``folder`` wrote: composition.json, and each listed part's
    file, manifest, external data and calibration cache. Empty when there is no readable one."""
    if not is_composition_folder(folder):
        return set()
    try:
        data = read_json_limited(folder / FILE_NAME, what=WHAT, max_bytes=MAX_BYTES)
    except (ArtifactError, OSError):
        return {FILE_NAME}
    parts = data.get("parts") if isinstance(data, dict) else None
    owned = {FILE_NAME}
    for part in parts if isinstance(parts, list) else []:
        file = part.get("file") if isinstance(part, dict) else None
        if (
            isinstance(file, str)
            and file
            and "/" not in file
            and "\\" not in file
            and file not in (".", "..")
        ):
            owned.update({file, f"{Path(file).stem}.calib", *(file + s for s in PART_COMPANIONS)})
    return owned


def foreign_entries(folder: Path) -> list[str]:
    """What ``folder`` holds that no earlier export wrote (sorted names); empty for a new folder."""
    if not folder.is_dir():
        return []
    owned = owned_names(folder)
    return sorted(e.name for e in folder.iterdir() if e.name not in owned)


def check_folder(folder: Path) -> None:
    """Refuse, before any work: a symbolic link (the swap would replace the link, not the folder it
    names), a file, or a folder holding anything an earlier export did not write."""
    if folder.is_symlink():
        raise ArtifactError(
            str(folder),
            f"is a symbolic link (to {os.readlink(folder)}); a split export replaces its folder as a whole",
            hint=f"give the folder itself, e.g. -o {os.path.realpath(folder)}",
        )
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(str(folder), "is a file; a split export is a folder", hint="e.g. -o fusion/")
    foreign = foreign_entries(folder)
    if not foreign:
        return
    what = "other files and no " + FILE_NAME if not is_composition_folder(folder) else "files no export wrote"
    raise ArtifactError(
        str(folder),
        f"is a folder with {what} ({_listed(foreign)}); not replaced",
        hint="give a new or empty folder, or move those files out of the earlier split export",
    )


def _listed(names: list[str], most: int = 5) -> str:
    more = f", and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


@contextmanager
def staged_folder(folder: Path) -> Iterator[Path]:
    """A staging folder beside ``folder`` (``check_folder`` first); the folders created for it
    are removed again if the body fails. The body ends with ``publish_folder``."""
    check_folder(folder)
    with output_folder(folder / FILE_NAME), staging_dir(folder, owned_in=_owned_in) as stage:
        yield stage


def _owned_in(folder: Path) -> Callable[[str], bool]:
    return owned_names(folder).__contains__


def publish_folder(stage: Path, folder: Path) -> None:
    """Move the staged folder into place. An earlier export there is moved aside first and its own
    files removed once the new one is in place; if that move fails or is interrupted, the earlier
    one is moved back, so the folder always holds one whole export. Anything else found there
    (checked again here) refuses the swap; what appears during it is moved back, never removed."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt
    check_folder(folder)
    owned = owned_names(folder)
    os.chmod(stage, 0o777 & ~_umask())  # the staging folder was private (mkdtemp)
    aside = Path(
        tempfile.mkdtemp(prefix=f".{folder.name}.{os.getpid()}.", suffix=ASIDE_SUFFIX, dir=folder.parent)
    )
    earlier = folder.exists()
    try:
        if earlier:
            os.replace(folder, aside)
        os.replace(stage, folder)
    except BaseException:
        if earlier and not folder.exists():
            os.replace(aside, folder)  # if this fails too, the earlier export stays in `aside`
        with contextlib.suppress(OSError):
            aside.rmdir()
        raise
    _clear_aside(aside, owned, folder)


def _clear_aside(aside: Path, owned: set[str], folder: Path) -> None:
    """Remove the earlier export's own files; move anything else back into ``folder``."""
    kept = restore_foreign(aside, folder, owned.__contains__)
    if kept:
        log.warning(f"kept {_listed(kept)}, which the new export would have replaced, in {aside}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
