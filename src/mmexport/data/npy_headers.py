"""Checks of .npy headers before numpy reads them: numpy allocates the shape a header claims
before reading, so a damaged or hostile header can ask for terabytes."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

from mmexport.core.errors import DataError
from mmexport.core.memory import MAX_FEED_BYTES


def check_npz_members(path: Path) -> None:
    """Each member's header against the size the archive records for it (see ``npy_size_problem``)."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                problem = npy_size_problem(member, info.file_size, "the archive")
            if problem:
                raise DataError(f"member {info.filename[:-4]!r}: {problem}", sample=str(path))


def npy_size_problem(f: Any, size: int, holder: str) -> str | None:
    """Why an .npy stream cannot be what its header says, checked before numpy allocates the
    header's shape (it allocates first, then reads: a header can ask for terabytes); None if fine."""
    from numpy.lib import format as npy_format

    version = npy_format.read_magic(f)
    read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    shape, _, dtype = read_header(f)
    if dtype.hasobject:
        return None  # refused by allow_pickle=False with numpy's own message
    expected = math.prod(shape) * dtype.itemsize
    available = size - f.tell()
    if expected != available:
        return (
            f"its header says shape {list(shape)} of {dtype} ({expected} bytes) but {holder} holds "
            f"{available} bytes (damaged or not written by numpy?)"
        )
    if MAX_FEED_BYTES is not None and expected > MAX_FEED_BYTES:
        return f"holds {expected / 2**30:.3g} GiB, more than this machine's memory"
    return None
