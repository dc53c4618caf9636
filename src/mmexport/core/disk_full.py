"""A write that found no room (a full disk, a file-size limit, a full quota) as one error line."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmexport.core.errors import ArtifactError

DISK_FULL = frozenset(
    code for code in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", None)) if code is not None
)
"""The errors of a write that found no room: a full disk, a file-size limit, a full quota."""


def disk_full_error(
    path: str | Path,
    error: OSError,
    *,
    what: str = "",
    hint: str = "free some space, or write elsewhere",
) -> ArtifactError:
    """The one line a write that found no room ends in, naming the file it was writing (``what``:
    what that file is, for one the user did not name, such as a temporary copy)."""
    why = "no space left on device"
    if error.errno == errno.EFBIG:
        why = "no space left under the file-size limit"
    subject = f"{what} cannot be written" if what else "cannot be written"
    return ArtifactError(str(path), f"{subject}: {why}; nothing was left half-written", hint=hint)


@contextmanager
def disk_full_refused(path: str | Path) -> Iterator[None]:
    """Turn a write in the body that found no room (``DISK_FULL``) into ``disk_full_error``."""
    try:
        yield
    except OSError as e:
        if e.errno not in DISK_FULL:
            raise
        raise disk_full_error(path, e) from e
