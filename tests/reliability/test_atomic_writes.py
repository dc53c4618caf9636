"""What makes an artifact and its manifest land together or not at all, checked in-process:
durability against power loss (fsync), Ctrl-C during the final moves, leftovers of killed runs."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mmexport.core.files import (
    INTERRUPTED,
    InterruptedAfterWrite,
    atomic_write_text,
    publish,
    remove_abandoned_staging,
    staging_dir,
)
from mmexport.core.manifest import read_manifest
from runtime.onnx_models import write_tiny


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths fsync'ed, and os.replace calls, in order."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append(f"replace {Path(src).name} -> {dst}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name the fsync'ed files")
def test_publish_flushes_the_artifact_before_the_rename_and_the_folder_after(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    """A rename can reach the disk before the data it names: after a power cut the artifact would
    be there, at its full size, with zeros inside. fsync the file first, the folder after."""
    final = tmp_path / "model.onnx"
    with staging_dir(final) as stage:
        staged = stage / final.name
        staged.write_bytes(b"onnx bytes")
        (stage / "model.onnx.data").write_bytes(b"weights")
        publish(staged, final, companions=("model.onnx.data",))
    replaced = [i for i, e in enumerate(fsyncs) if e.startswith("replace")]
    assert replaced, fsyncs
    flushed_first = {e.split(" ", 1)[1] for e in fsyncs[: replaced[0]] if e.startswith("fsync")}
    assert str(stage / "model.onnx") in flushed_first and str(stage / "model.onnx.data") in flushed_first
    assert f"fsync {tmp_path}" in fsyncs[replaced[-1] :]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name the fsync'ed files")
def test_manifest_writes_flush_the_folder_after_the_rename(tmp_path: Path, fsyncs: list[str]) -> None:
    atomic_write_text(tmp_path / "model.onnx.json", "{}")
    assert fsyncs[-1] == f"fsync {tmp_path}" and fsyncs[-2].startswith("replace")


def test_ctrl_c_during_the_final_moves_completes_them_then_stops(tmp_path: Path) -> None:
    """SIGINT between the artifact's move and its manifest's used to leave the new artifact without
    a manifest (and the old one gone). Now the moves finish, then InterruptedAfterWrite (a
    KeyboardInterrupt) is raised."""
    import mmexport.core.manifest
    from mmexport.core.manifest import publish_artifact

    final = write_tiny(tmp_path)  # a previous good artifact
    manifest = read_manifest(final)
    assert manifest is not None
    previous = signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    real_place = mmexport.core.manifest.place_manifest

    def place_after_ctrl_c(staged_manifest: Path, final_path: Path) -> Path:
        os.kill(os.getpid(), signal.SIGINT)  # arrives while the manifest is being moved into place
        return real_place(staged_manifest, final_path)

    try:
        mmexport.core.manifest.place_manifest = place_after_ctrl_c
        with staging_dir(final) as stage, pytest.raises(InterruptedAfterWrite):
            staged = stage / final.name
            staged.write_bytes(b"new onnx")
            manifest.sha256 = hashlib.sha256(b"new onnx").hexdigest()
            publish_artifact(staged, final, manifest)
    finally:
        mmexport.core.manifest.place_manifest = real_place
        signal.signal(signal.SIGINT, previous)
        INTERRUPTED.clear()
    written = read_manifest(final)
    assert final.read_bytes() == b"new onnx" and written is not None
    assert written.sha256 == hashlib.sha256(b"new onnx").hexdigest()


def _raise_keyboard_interrupt(_signum: int, _frame: object) -> None:
    INTERRUPTED.set()
    raise KeyboardInterrupt


def test_temporary_files_of_killed_runs_are_removed_by_the_next_run(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = int(dead.stdout)
    final = tmp_path / "model.onnx"
    (tmp_path / f".model.onnx.{pid}.abc.staging").mkdir()
    (tmp_path / f".model.onnx.json.{pid}.xyz.tmp").write_text("{half a manifest")
    (tmp_path / f".model.onnx.json.{os.getpid()}.mine.tmp").write_text("a live process's")
    removed = remove_abandoned_staging(final)
    assert sorted(p.name for p in removed) == [
        f".model.onnx.{pid}.abc.staging",
        f".model.onnx.json.{pid}.xyz.tmp",
    ]
    assert [p.name for p in tmp_path.iterdir()] == [f".model.onnx.json.{os.getpid()}.mine.tmp"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name the fsync'ed files")
def test_the_timing_cache_is_flushed_before_its_rename(tmp_path: Path, fsyncs: list[str]) -> None:
    """Builds share a timing cache: a power cut must not leave a renamed cache of zeros."""
    from mmexport.trt.build_stage import write_bytes_atomically

    cache = tmp_path / "trt.cache"
    write_bytes_atomically(cache, b"timing cache bytes")
    assert cache.read_bytes() == b"timing cache bytes"
    replaced = next(i for i, e in enumerate(fsyncs) if e.startswith("replace"))
    assert any(e.startswith("fsync") and ".trt.cache." in e for e in fsyncs[:replaced]), fsyncs
    assert fsyncs[-1] == f"fsync {tmp_path}"
    assert [p.name for p in tmp_path.iterdir()] == ["trt.cache"]
