"""Writing a split export's folder atomically: staged beside it, then moved into place whole."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmexport.core.errors import ArtifactError
from mmexport.core.files import INTERRUPTED, output_folder, staging_dir
from mmexport.split.composition import FILE_NAME, is_composition_folder


def check_folder(folder: Path) -> None:
    """Refuse, before any work: a file, or a non-empty folder that is not an earlier split export."""
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(str(folder), "is a file; a split export is a folder", hint="e.g. -o fusion/")
    if folder.is_dir() and any(folder.iterdir()) and not is_composition_folder(folder):
        raise ArtifactError(
            str(folder),
            f"is a folder with other files and no {FILE_NAME}; not replaced",
            hint="give a new or empty folder, or an earlier split export",
        )


@contextmanager
def staged_folder(folder: Path) -> Iterator[Path]:
    """A staging folder beside ``folder`` (``check_folder`` first); the folders created for it
    are removed again if the body fails. The body ends with ``publish_folder``."""
    check_folder(folder)
    with output_folder(folder / FILE_NAME), staging_dir(folder) as stage:
        yield stage


def publish_folder(stage: Path, folder: Path) -> None:
    """Move the staged folder into place. An earlier export there is moved aside first and removed
    once the new one is in place; if that move fails or is interrupted, the earlier one is moved
    back, so the folder always holds one whole export."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt
    os.chmod(stage, 0o777 & ~_umask())  # the staging folder was private (mkdtemp)
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.{os.getpid()}.", suffix=".old", dir=folder.parent))
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
    shutil.rmtree(aside, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
