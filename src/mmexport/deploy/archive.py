"""Writing and reading bundle archives (``.tar.gz``) safely.

Writing: regular files only, owner root, fixed modes, each file hashed as it is streamed into the
archive (so the recorded sha256 is of the bytes archived), into a temporary file beside the output
and renamed into place; an interrupt or error leaves nothing.

Reading: every member is checked before anything is written: no absolute path, no ``..``, no link
(bundles never contain links, not even ones that point inside), no device or fifo, no duplicate
name, sizes within ``ArchiveLimits``. Extraction then goes through tarfile's ``data`` filter as a
second line of defence, into a folder the caller stages. tarfile reads a pax header or GNU long
name whole, in one read of the size its header declares, so every single read from the archive is
capped (``MAX_READ``): a few kilobytes of gzip cannot make it allocate gigabytes.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from mmexport.core.disk_full import disk_full_refused
from mmexport.core.errors import ArtifactError, MmexportError
from mmexport.core.files import INTERRUPTED, fsync_folder, staging_dir

GIB = 1 << 30
COMPRESS_LEVEL = 6  # weights hardly compress; level 9 costs much more time for little gain
COPY_BUFSIZE = 16 << 10  # tarfile's chunk when it extracts file data
MAX_READ = 16 << 10
"""The largest single read tarfile may make: a data chunk, or a whole pax header / GNU long name
(a bundle's are a few hundred bytes). Python before 3.11.10 / 3.12.6 scans a pax header with a
regex that is quadratic in its length: 0.3 s at this size, hours at megabytes."""
GZIP_MAGIC = b"\x1f\x8b"
MAX_NAME_CHARS = 1024  # a bundle's names are models/<file name>; Linux paths stop at 4096 bytes
MAX_DEPTH = 32  # folders; tarfile and os.makedirs create each level by recursion
MAX_PART_BYTES = 255  # one file or folder name, as Linux file systems take it


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may hold before it is refused unread."""

    max_members: int = 10_000
    max_member_bytes: int = 32 * GIB
    max_total_bytes: int = 64 * GIB

    def describe(self) -> str:
        return (
            f"{self.max_members} members, {self.max_member_bytes / GIB:g} GiB per file, "
            f"{self.max_total_bytes / GIB:g} GiB in all"
        )


DEFAULT_LIMITS = ArchiveLimits()


class UnsafeArchiveError(ArtifactError):
    """An archive member that could write outside the target folder, or that a bundle never holds.

    ``member`` is the member's name as stored; ``problem`` says what is wrong with it.
    """

    def __init__(self, archive: str, member: str, problem: str) -> None:
        self.member = member
        self.problem = problem
        super().__init__(archive, f"member {shown(member)} {problem}; nothing was extracted")


@dataclass(frozen=True)
class Entry:
    """One file to write into an archive: from disk (``source``) or from memory (``data``)."""

    name: str  # POSIX path inside the archive
    source: Path | None = None
    data: bytes | None = None
    executable: bool = False

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else Path(self.source or "").stat().st_size

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.source is not None
        return open(self.source, "rb")


class HashingReader:
    """A file object that hashes what is read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        block = self.raw.read(size)
        self.digest.update(block)
        return block


def check_member_name(name: str) -> str | None:
    """What makes ``name`` unsafe as a relative path inside the target folder, or None."""
    if not name or "\x00" in name:
        return "has an empty or NUL-containing name"
    if len(name) > MAX_NAME_CHARS:
        return f"has a name longer than {MAX_NAME_CHARS} characters"
    if name.count("/") > MAX_DEPTH:
        return f"is nested more than {MAX_DEPTH} levels deep"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "has a control character in its name"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes the file system gave as surrogates
        return "has a name that is not UTF-8"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if "\\" in name:
        return "has a backslash in its path"
    if ".." in PurePosixPath(name).parts:
        return "leaves the target folder ('..' in its path)"
    if any(len(part.encode("utf-8")) > MAX_PART_BYTES for part in PurePosixPath(name).parts):
        return f"has a file or folder name longer than {MAX_PART_BYTES} bytes"
    return None


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: names and listings from an archive may be long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def normalized(name: str) -> str:
    """``./a//b/`` -> ``a/b``: the name the member will have on disk."""
    return str(PurePosixPath(name))


class ArchiveWriter:
    """A gzip tar written in a staging folder beside ``output`` and renamed into place on success.

    ``add`` returns the sha256 of the bytes it archived; ``hashes`` and ``sizes`` keep them by name.
    Leaving the ``with`` block by an exception (or after Ctrl-C) removes the staging folder; its
    name carries the process id (``files.staging_dir``), so the next run for the same output
    removes one that a killed run left.
    """

    def __init__(self, output: Path, *, mtime: int) -> None:
        self.output = output
        self.mtime = mtime
        self.hashes: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    def __enter__(self) -> ArchiveWriter:
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(staging_dir(self.output)) / self.output.name
        self._raw = self._stack.enter_context(open(self._tmp, "wb"))
        self._tar = tarfile.open(fileobj=self._raw, mode="w:gz", compresslevel=COMPRESS_LEVEL)
        return self

    def add(self, entry: Entry) -> str:
        if entry.name in self.hashes:
            raise ArtifactError(entry.name, "would be stored twice in the archive")
        with disk_full_refused(self.output):
            self.hashes[entry.name] = _add(self._tar, entry, self.mtime)
        self.sizes[entry.name] = entry.size
        return self.hashes[entry.name]

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        with self._stack:  # closes the file, then removes the staging folder
            self._tar.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            if exc_type is None:
                if INTERRUPTED.is_set():
                    raise KeyboardInterrupt
                os.chmod(self._tmp, 0o644)
                os.replace(self._tmp, self.output)
                fsync_folder(self.output.parent)


def _add(tar: tarfile.TarFile, entry: Entry, mtime: int) -> str:
    info = tarfile.TarInfo(entry.name)
    info.size = entry.size
    info.mode = 0o755 if entry.executable else 0o644
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    with entry.open() as f:
        reader = HashingReader(f)
        tar.addfile(info, reader)  # type: ignore[arg-type]  # reads exactly info.size bytes
    return reader.digest.hexdigest()


def checked_members(archive: Path, tar: tarfile.TarFile, limits: ArchiveLimits) -> list[tarfile.TarInfo]:
    """Every member of ``tar`` if all are safe regular files (or folders); raise on the first that is not."""
    where = str(archive)
    members: list[tarfile.TarInfo] = []
    seen: set[str] = set()
    total = 0
    for member in tar:
        if len(members) >= limits.max_members:
            raise ArtifactError(where, f"holds more than {limits.max_members} members; not a bundle")
        problem = check_member_name(member.name) or _type_problem(member)
        if problem is None and normalized(member.name) in seen:
            problem = "appears twice in the archive"
        if problem is None and member.size > limits.max_member_bytes:
            problem = f"is {member.size} bytes, over the limit of {limits.max_member_bytes}"
        if problem is not None:
            raise UnsafeArchiveError(where, member.name, problem)
        total += member.size
        if total > limits.max_total_bytes:
            raise ArtifactError(where, f"unpacks to more than {limits.max_total_bytes} bytes; not extracted")
        seen.add(normalized(member.name))
        members.append(member)
    return members


def _type_problem(member: tarfile.TarInfo) -> str | None:
    if member.issym():
        return f"is a symbolic link (to {member.linkname!r}); bundles hold no links"
    if member.islnk():
        return f"is a hard link (to {member.linkname!r}); bundles hold no links"
    if member.isdev():
        return "is a device or fifo; bundles hold regular files only"
    if member.issparse():
        return "is a sparse file; bundles hold regular files only"
    if not (member.isreg() or member.isdir()):
        return f"has tar type {member.type!r}; bundles hold regular files only"
    return None


class CappedReads:
    """A read-only file object whose single reads may not exceed ``limit`` bytes (see ``MAX_READ``)."""

    def __init__(self, raw: BinaryIO | gzip.GzipFile, limit: int, where: str) -> None:
        self.raw = raw
        self.limit = limit
        self.where = where

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.limit:
            raise ArtifactError(
                self.where,
                f"has a tar header record of {size} bytes (over {self.limit}); not a bundle, not extracted",
            )
        return self.raw.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()


OTHER_ARCHIVES = {
    b"PK\x03\x04": "zip",
    b"PK\x05\x06": "zip",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"7z\xbc\xaf\x27\x1c": "7z",
}
"""The first bytes of archive formats a bundle is not, and their names."""


@contextlib.contextmanager
def open_archive(archive: Path) -> Iterator[tarfile.TarFile]:
    """``archive`` (a gzip tar or a plain tar) for reading, with every read capped at ``MAX_READ``."""
    if not archive.is_file():
        raise ArtifactError(str(archive), "does not exist" if not archive.exists() else "is not a file")
    with contextlib.ExitStack() as stack:
        raw: BinaryIO | gzip.GzipFile = stack.enter_context(open(archive, "rb"))
        head = raw.read(8)
        compressed = head[:2] == GZIP_MAGIC
        raw.seek(0)
        other = next((kind for magic, kind in OTHER_ARCHIVES.items() if head.startswith(magic)), None)
        if other is not None:
            raise ArtifactError(
                str(archive),
                f"is not a tar archive (gzip or plain tar), got {other}",
                hint="a bundle is the .tar.gz that 'mmexport bundle' writes",
            )
        if compressed:
            raw = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        capped = CappedReads(raw, MAX_READ, str(archive))
        with _reading(archive, "is not a readable tar archive (gzip or plain tar)"):
            # typeshed's file protocol asks for write and close too; reading needs read, seek, tell
            tar = tarfile.TarFile(fileobj=capped, mode="r", copybufsize=COPY_BUFSIZE)  # type: ignore[arg-type]
            stack.enter_context(tar)
        yield tar


@contextlib.contextmanager
def _reading(archive: Path, what: str) -> Iterator[None]:
    """tarfile's and gzip's errors while reading ``archive`` as one ArtifactError saying ``what``."""
    try:
        yield
    except RecursionError:  # tarfile reads each pax / GNU header by recursion into the next
        raise ArtifactError(str(archive), f"{what}: headers chained too deep to read") from None
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ArtifactError(str(archive), f"{what} ({e})") from e


def extract(
    archive: Path, destination: Path, limits: ArchiveLimits = DEFAULT_LIMITS
) -> list[tarfile.TarInfo]:
    """Check every member of ``archive``, then extract it into ``destination`` (created here).

    Nothing is written unless every member passes; the caller stages ``destination`` and removes
    it if anything later fails.
    """
    with open_archive(archive) as tar:
        with _reading(archive, "is damaged or truncated"):
            members = checked_members(archive, tar, limits)
        if not hasattr(tarfile, "data_filter"):
            raise MmexportError(
                "unpacking bundles needs tarfile's extraction filters (Python 3.10.12+, 3.11.4+ or 3.12+)",
                hint="upgrade Python",
            )
        needed = sum(m.size for m in members)
        free = shutil.disk_usage(destination.parent).free
        if needed > free:
            raise ArtifactError(
                str(archive), f"unpacks to {needed} bytes, but {destination.parent} has {free} free"
            )
        destination.mkdir()
        with _reading(archive, "cannot be extracted"):
            tar.extractall(destination, members=members, filter="data")
    return members
