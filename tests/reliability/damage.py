"""Ways a file on disk gets damaged: cut short, bits flipped, emptied, replaced by a folder."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path


def truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def truncate_to_ten(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:10])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def flip_bit(path: Path, position: float = 0.5, bit: int = 0) -> None:
    """Flip one bit at ``position`` (0..1 of the file's length)."""
    data = bytearray(path.read_bytes())
    index = min(int(position * len(data)), len(data) - 1)
    data[index] ^= 1 << bit
    path.write_bytes(bytes(data))


def folder(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    path.mkdir()
    (path / "inside").write_text("a folder where a file should be")


def dangling_link(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.parent / "gone-elsewhere")


DAMAGES: dict[str, Callable[[Path], None]] = {
    "truncated-half": truncate_half,
    "truncated-10-bytes": truncate_to_ten,
    "empty": empty,
    "bit-flip": flip_bit,
    "folder": folder,
    "dangling-link": dangling_link,
}
