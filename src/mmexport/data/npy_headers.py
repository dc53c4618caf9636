"""Checks of .npy headers before numpy reads them: numpy allocates the shape a header claims
before reading, so a damaged or hostile header can ask for terabytes."""

from __future__ import annotations

import math
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Any

from mmexport.core.errors import DataError
from mmexport.core.memory import MAX_FEED_BYTES
from mmexport.core.spec import ModelSpec

_MAGIC = b"\x93NUMPY"


def check_npz_members(path: Path, spec: ModelSpec | None = None) -> None:
    """Every member's header against the size the archive records for it (see ``npy_size_problem``)
    and against what ``spec``'s dims allow for it, before numpy reads any of them.

    numpy reads any member that starts like an .npy as an array, whatever its name, so every
    member is checked; one that is not an .npy array is refused (it could not be a feed)."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            limit = None if spec is None else spec_max_bytes(spec, name)
            try:
                with archive.open(info) as member:
                    if member.read(len(_MAGIC)) != _MAGIC:
                        raise DataError(f"member {name!r} is not a .npy array", sample=str(path))
                with archive.open(info) as member:
                    problem = npy_size_problem(member, info.file_size, "the archive", limit)
            except (
                RuntimeError,
                NotImplementedError,
                zlib.error,
            ) as e:  # encrypted, unknown or bad compression
                raise DataError(f"member {name!r} cannot be read ({e})", sample=str(path)) from e
            if problem:
                raise DataError(f"member {name!r}: {problem}", sample=str(path))


def npy_size_problem(f: Any, size: int, holder: str, max_bytes: int | None = None) -> str | None:
    """Why an .npy stream cannot be what its header says, checked before numpy allocates the
    header's shape (it allocates first, then reads: a header can ask for terabytes); None if fine.
    ``max_bytes``: the most the reader can use (the spec's dims at their max), if it knows."""
    from numpy.lib import format as npy_format

    version = npy_format.read_magic(f)
    read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    try:
        shape, _, dtype = read_header(f)
    except (SyntaxError, tokenize.TokenError) as e:  # numpy parses the header as a Python literal
        return f"its .npy header cannot be parsed ({e})"
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
    if max_bytes is not None and expected > max_bytes:
        return f"holds {expected} bytes, more than the spec's dims allow at their max ({max_bytes} bytes)"
    return None


def spec_max_bytes(spec: ModelSpec, name: str | None = None) -> int:
    """The most bytes an array of a feed file can hold for the input ``name`` (its name, or its
    modality where unique) at the dims' max; for another name (labels), the largest input's.
    8 bytes a value: files may hold float64 or int64 that are cast on reading."""
    point = spec.point("max")
    key = spec.input_keys().get(name) if name is not None else None
    inputs = [spec.input(key)] if key is not None else spec.inputs
    return max(math.prod(d if isinstance(d, int) else point[d] for d in i.shape) for i in inputs) * 8
