"""Writing a split export's folder atomically: staged beside it, then moved into place whole."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mmexport.composition import FILE_NAME, is_composition_folder
from mmexport.errors import ArtifactError
from mmexport.files import INTERRUPTED


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
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArtifactError(str(folder.parent), f"cannot create the output folder: {e.strerror}") from e
    if not os.access(folder.parent, os.W_OK):
        raise ArtifactError(str(folder.parent), "is not writable")


def publish_folder(stage: Path, folder: Path) -> None:
    """Move the staged folder into place; an earlier export there is moved aside first, then removed."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt
    final = stage.with_name(f"{stage.name}.done")
    os.replace(stage, final)  # out of staging_dir's clean-up
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(final, 0o777 & ~mask)  # the staging folder was private (mkdtemp)
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        os.replace(folder, old)
    os.replace(final, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
