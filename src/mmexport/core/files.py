"""Atomic file writing: a failure never leaves a file that looks valid.

Artifacts are built in a staging folder beside their final path, then moved into place with
``os.replace`` (atomic on one filesystem); manifests are written last, also atomically. Files
are flushed to the disk (fsync) before they are renamed, and the folder after, so that a power
cut cannot leave a renamed file whose bytes never reached the disk. Ctrl-C is held back while
an artifact and its manifest are moved into place (``uninterrupted``), and temporary files of
killed runs carry their process id, so that the next run removes them.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from mmexport.core.disk_full import disk_full_refused
from mmexport.core.errors import ArtifactError

log = logging.getLogger(__name__)


def require_utf8_path(path: str | Path) -> None:
    """Refuse a path that is not valid UTF-8 (a file name in another encoding): onnxruntime and
    TensorRT take UTF-8 paths only, so an artifact written there could not be loaded again."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
        raise ArtifactError(
            shown,
            "path is not UTF-8; onnxruntime and TensorRT cannot open it",
            hint="rename the file or folder",
        ) from None


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_text(path: str | Path, text: str, *, output: str | Path | None = None) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    atomic_write_bytes(path, text.encode("utf-8"), output=output)


def atomic_write_bytes(path: str | Path, data: bytes, *, output: str | Path | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, flushed to the disk,
    and a rename; a reader sees the old file or the new one, never part of one."""
    with atomic_writer(path, output=output) as f:
        f.write(data)


@contextmanager
def atomic_writer(path: str | Path, *, output: str | Path | None = None) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through (streamed, for outputs too large to hold twice):
    a temporary file in the same folder, flushed to the disk and renamed into place when the body
    succeeds, removed when it fails (a full disk, Ctrl-C), so that an earlier file stays whole.
    A full disk is an ``ArtifactError`` naming ``output`` (the file the user asked for, when
    ``path`` is a staged part of it), else ``path``."""
    path = Path(path)
    with disk_full_refused(output if output is not None else path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    fsync_folder(path.parent)


def fsync_file(path: Path) -> None:
    """Flush a written file's bytes to the disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to the disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def output_folder(path: str | Path) -> Iterator[Path]:
    """Create the folder of ``path`` if needed; remove the folders made here if the body fails."""
    path = Path(path)
    require_utf8_path(path)
    if path.is_dir():
        raise ArtifactError(str(path), "is a folder; give a file name", hint="e.g. -o model.onnx")
    missing = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArtifactError(str(path.parent), f"cannot create the output folder: {e.strerror}") from e
    if not os.access(path.parent, os.W_OK):
        raise ArtifactError(str(path.parent), "is not writable")
    try:
        yield path
    except BaseException:
        for folder in missing:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


class InterruptedAfterWrite(KeyboardInterrupt):
    """A Ctrl-C that ``uninterrupted`` held back until its body (moving an artifact, then its
    manifest, into place) had finished: everything was written, then the run stopped."""


STAGING_SUFFIX = ".staging"
TMP_SUFFIX = ".tmp"
INTERRUPTED = threading.Event()
"""Set by the CLI's SIGINT handler; ``publish`` refuses to move anything into place once set."""


def remove_abandoned_staging(final_path: Path) -> list[Path]:
    """Remove what runs for ``final_path`` that no longer run left behind: staging folders
    (``.model.onnx.<pid>.*.staging``) and half-written manifests (``.model.onnx.json.<pid>.*.tmp``)."""
    removed = []
    for prefix, suffix in (
        (f".{final_path.name}.", STAGING_SUFFIX),
        (f".{final_path.name}.json.", TMP_SUFFIX),
    ):
        for entry in final_path.parent.glob(f"{glob.escape(prefix)}*{suffix}"):
            pid = entry.name[len(prefix) :].split(".", 1)[0]
            if not pid.isdigit() or _process_alive(int(pid)):
                continue
            if entry.is_dir() and suffix == STAGING_SUFFIX:
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.is_file() and suffix == TMP_SUFFIX:
                entry.unlink(missing_ok=True)
            else:
                continue
            removed.append(entry)
    return removed


ASIDE_SUFFIX = ".old"
Owned = Callable[[str], bool]
"""Whether a relative POSIX path inside an output folder was written by mmexport."""


def recover_abandoned_aside(final_path: Path, owned_in: Callable[[Path], Owned]) -> list[Path]:
    """Finish the folder swaps that runs for ``final_path`` that no longer run left halfway: the
    earlier output they moved aside (``.NAME.<pid>.*.old``) moves back if nothing took its place;
    else its own files (``owned_in(aside)`` says which) are removed and anything else moves back
    into ``final_path`` (``restore_foreign``). Nothing a user put there is removed. Returns the
    folders handled."""
    prefix = f".{final_path.name}."
    handled = []
    for aside in final_path.parent.glob(f"{glob.escape(prefix)}*{ASIDE_SUFFIX}"):
        pid = aside.name[len(prefix) :].split(".", 1)[0]
        if not pid.isdigit() or _process_alive(int(pid)) or aside.is_symlink() or not aside.is_dir():
            continue
        if not any(aside.iterdir()):
            aside.rmdir()
        elif not (final_path.exists() or final_path.is_symlink()):
            os.replace(aside, final_path)  # stopped between its two moves: the earlier output returns
        else:
            kept = restore_foreign(aside, final_path, owned_in(aside))
            if kept:
                log.warning(f"{aside} (left by a stopped run) still holds {', '.join(kept)}: not replaced")
        handled.append(aside)
    return handled


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


LOCK_SUFFIX = ".lock"


@contextmanager
def output_lock(final_path: str | Path) -> Iterator[None]:
    """Hold ``<final_path>.lock`` (``fcntl.flock``) while an output is written, so that two runs
    writing one output cannot leave one's manifest beside the other's artifact: the second is
    refused. The kernel drops the lock when a process dies, so a file left by a killed run never
    blocks; the file is removed on the way out. A no-op where ``fcntl`` is missing (Windows)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    lock = Path(f"{final_path}{LOCK_SUFFIX}")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise ArtifactError(str(lock.parent), f"cannot write here: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ArtifactError(
                str(final_path),
                f"is being written by another mmexport run (it holds {lock.name})",
                hint="wait for it to finish, or write to another output",
            ) from None
        if _same_file(fd, lock):
            break
        os.close(fd)  # the file was removed by the run that held it: lock the new one
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # while still held: a waiting run then locks a new file
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


@contextmanager
def staging_dir(final_path: str | Path, *, owned_in: Callable[[Path], Owned] | None = None) -> Iterator[Path]:
    """A temporary folder beside ``final_path``, removed afterwards whatever happens, with the
    output's lock (``output_lock``) held meanwhile.

    Its name carries this process's id, so that the folders of runs that were killed (and could
    not clean up) are recognised and removed by the next run for the same output. A write in the
    body that finds the disk full is an ``ArtifactError`` naming ``final_path``. ``owned_in``:
    for outputs that are folders swapped as a whole, what an earlier output in a folder wrote
    (``recover_abandoned_aside`` finishes the swaps of killed runs with it, under the lock).
    """
    final_path = Path(final_path)
    with output_lock(final_path):
        if owned_in is not None:
            recover_abandoned_aside(final_path, owned_in)
        with _staging_dir(final_path) as tmp, disk_full_refused(final_path):
            yield tmp


@contextmanager
def _staging_dir(final_path: Path) -> Iterator[Path]:
    remove_abandoned_staging(final_path)
    try:
        tmp = Path(
            tempfile.mkdtemp(
                prefix=f".{final_path.name}.{os.getpid()}.", suffix=STAGING_SUFFIX, dir=final_path.parent
            )
        )
    except OSError as e:
        raise ArtifactError(str(final_path.parent), f"cannot write here: {e.strerror}") from e
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def restore_foreign(aside: Path, folder: Path, owned: Owned) -> list[str]:
    """After an earlier output was moved to ``aside`` and the new one into ``folder``: remove what
    ``owned`` (a relative POSIX path -> bool) says the earlier output wrote, and move everything else
    back into ``folder``. What cannot go back (the new output has that name) stays in ``aside``;
    returns those paths. Nothing a user put there is ever removed."""
    kept: list[str] = []
    for entry in sorted(aside.rglob("*"), key=lambda p: len(p.parts)):
        if not (entry.exists() or entry.is_symlink()):
            continue  # moved back with its folder
        name = entry.relative_to(aside).as_posix()
        if entry.is_dir() and not entry.is_symlink():
            if owned(name) or (folder / name).is_dir() or not _holds_foreign(entry, aside, owned):
                continue  # owned, merged into the new folder below, or only owned files inside
        elif owned(name):
            entry.unlink()
            continue
        target = folder / name
        if target.exists() or target.is_symlink() or not target.parent.is_dir():
            kept.append(name)
            continue
        os.replace(entry, target)
    _remove_owned_and_empty(aside, owned)
    kept = [k for k in kept if (aside / k).exists() or (aside / k).is_symlink()]
    if not kept:
        with contextlib.suppress(OSError):
            aside.rmdir()
    return kept


def _holds_foreign(folder: Path, root: Path, owned: Callable[[str], bool]) -> bool:
    return any(
        not owned(p.relative_to(root).as_posix())
        for p in folder.rglob("*")
        if not p.is_dir() or p.is_symlink()
    )


def _remove_owned_and_empty(aside: Path, owned: Callable[[str], bool]) -> None:
    """Remove, deepest first, the owned files left in ``aside`` and the folders left empty."""
    for entry in sorted(aside.rglob("*"), key=lambda p: -len(p.parts)):
        name = entry.relative_to(aside).as_posix()
        if entry.is_dir() and not entry.is_symlink():
            with contextlib.suppress(OSError):
                entry.rmdir()  # only when empty
        elif owned(name):
            entry.unlink(missing_ok=True)


def publish(staged: Path, final_path: Path, *, companions: tuple[str, ...] = ()) -> None:
    """Move a staged artifact (and companion files such as external data) into place.

    The stale manifest of a previous artifact at ``final_path`` is removed first, so that an
    interruption between here and the new manifest leaves an artifact without a manifest,
    never an artifact with someone else's manifest.

    An interrupt that arrived while the artifact was being made (and that a library swallowed
    on the way, as torch's exporter can) is honoured here: nothing is moved into place.
    """
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt
    for name in companions:
        fsync_file(staged.parent / name)
    fsync_file(staged)
    Path(f"{final_path}.json").unlink(missing_ok=True)
    stale_data = Path(f"{final_path}.data")
    if stale_data.name not in companions:
        stale_data.unlink(missing_ok=True)  # left by an earlier export with external data
    for name in companions:
        os.replace(staged.parent / name, final_path.parent / name)
    os.replace(staged, final_path)
    fsync_folder(final_path.parent)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold Ctrl-C back while the body runs (moving an artifact and then its manifest into place),
    then raise ``InterruptedAfterWrite`` (a KeyboardInterrupt): both land, or neither. Only the main
    thread receives signals; elsewhere the body just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, _frame: object) -> None:
        held.append(signum)
        INTERRUPTED.set()

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise InterruptedAfterWrite


def utc_now() -> str:
    """The time artifacts and reports record as ``created``: UTC, to the second, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
