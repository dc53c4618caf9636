"""What the machine refuses (a full disk, a file-size limit, memory, a deleted working folder,
Ctrl-C while the command line starts): one ``error:`` line (or ``interrupted``) and an exit code,
never a traceback or an abort, and nothing half-written."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import onnx
import pytest
from click.testing import CliRunner

import mmexport.core.files
import mmexport.precision.common
from mmexport.cli.app import cli
from mmexport.core.files import sha256_file
from reliability import budget
from runtime.onnx_models import write_tiny

SRC = Path(mmexport.core.files.__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parents[1]


def _no_space(*_args: Any, **_kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_tiny(tmp_path)


def _disk_full_at(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Make one write of the run find the disk full: the ONNX being saved, the fsync before the
    move, or the manifest written through the atomic writer."""
    if where == "onnx.save":

        def save(model: Any, path: Any, *args: Any, **kwargs: Any) -> None:
            Path(path).write_bytes(b"\x08partial")  # some bytes reached the disk, then none
            _no_space()

        monkeypatch.setattr(onnx, "save", save)
        monkeypatch.setattr(mmexport.precision.common, "save_model_streamed", save)  # variants' writer
    elif where == "fsync":
        monkeypatch.setattr(mmexport.core.files, "fsync_file", _no_space)
    else:
        real = mmexport.core.files.atomic_write_bytes

        def atomic_write_bytes(path: Any, data: bytes, *, output: Any = None) -> None:
            if str(path).endswith(".json"):
                with mmexport.core.files.atomic_writer(path, output=output) as f:
                    f.write(data[:10])
                    _no_space()
            real(path, data, output=output)

        monkeypatch.setattr(mmexport.core.files, "atomic_write_bytes", atomic_write_bytes)


@pytest.mark.parametrize("where", ["onnx.save", "fsync", "manifest"])
@pytest.mark.parametrize("command", ["fp16", "calibrate"])
def test_a_full_disk_is_one_line_and_keeps_the_earlier_output(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch, command: str, where: str
) -> None:
    out = tmp_path / f"out.{command}.onnx"
    args = [command, str(source), "-o", str(out), *(["--samples", "4"] if command == "calibrate" else [])]
    assert CliRunner().invoke(cli, args).exit_code == 0
    earlier = {p.name: sha256_file(p) for p in tmp_path.iterdir() if p.name.startswith(out.name)}
    _disk_full_at(monkeypatch, where)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert _error_lines(result.output) == [
        f"error: {out}: cannot be written: no space left on device; nothing was left half-written "
        "(free some space, or write elsewhere)"
    ]
    now = {p.name: sha256_file(p) for p in tmp_path.iterdir() if p.name.startswith(out.name)}
    assert now == earlier  # the earlier artifact, its manifest and cache, untouched
    assert _leftovers(tmp_path) == []
    budget.record("full disk", f"{command} at {where}: one error, the earlier output kept")


def test_a_full_disk_while_bundling_is_one_line(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tarfile.TarFile, "addfile", _no_space)
    out = tmp_path / "b.tar.gz"
    result = CliRunner().invoke(cli, ["bundle", str(source), "--target", "gpu-trt10", "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert _error_lines(result.output) == [
        f"error: {out}: cannot be written: no space left on device; nothing was left half-written "
        "(free some space, or write elsewhere)"
    ]
    assert not out.exists() and _leftovers(tmp_path) == []
    budget.record("full disk", "bundle: one error, nothing written")


def _cli(args: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    code = "import sys; sys.argv[0] = 'mmexport'; from mmexport.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


@pytest.mark.parametrize("command", ["fp16", "bundle"])
def test_a_file_size_limit_is_one_line(tmp_path: Path, source: Path, command: str) -> None:
    """RLIMIT_FSIZE: the kernel answers EFBIG (Python ignores SIGXFSZ) once a file would grow past it."""
    out = tmp_path / ("b.tar.gz" if command == "bundle" else "t16.onnx")
    extra = ["--target", "gpu-trt10"] if command == "bundle" else []

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    result = _cli([command, str(source), *extra, "-o", str(out)], tmp_path, preexec_fn=limit)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = _error_lines(result.stderr)
    # fp16: the first write is the variant itself, staged beside the output for the check
    assert lines == [
        f"error: {out}: cannot be written: no space left under the file-size limit; nothing was "
        "left half-written (free some space, or write elsewhere)"
    ]
    assert not out.exists() and not Path(f"{out}.json").exists() and _leftovers(tmp_path) == []
    budget.record("file-size limit (EFBIG)", f"{command}: one error, nothing written")


def test_huge_shapes_on_a_graph_without_manifest_are_refused_before_allocating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feed fits, but the float64 values it is drawn from do not: refused, nothing allocated."""
    import mmexport.core.spec_checks

    bare = write_tiny(tmp_path, manifest=False)
    monkeypatch.setattr(mmexport.core.spec_checks, "MAX_FEED_BYTES", 20 << 20)
    shape = "image=1x3x1024x1024,tokens=1x4"  # 12 MiB of float32, drawn from 24 MiB of float64
    result = CliRunner().invoke(cli, ["bench", str(bare), "--shape", shape, "--iterations", "1"])
    assert result.exit_code == 1, result.output
    assert "more than this machine's memory (0.0195 GiB)" in _error_lines(result.output)[0]


def test_memory_errors_that_escape_a_command_are_one_line(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmexport.runtime.session

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise MemoryError("Unable to allocate 22.4 GiB for an array with shape (1000, 3, 1000, 1000)")

    monkeypatch.setattr(mmexport.runtime.session.Session, "__init__", refuse)
    result = CliRunner().invoke(cli, ["run", str(source)])
    assert result.exit_code == 1
    assert _error_lines(result.output) == [
        "error: memory: this machine ran out of it (Unable to allocate 22.4 GiB for an array with shape "
        "(1000, 3, 1000, 1000)) (use smaller shapes)"
    ]


@pytest.mark.parametrize("command", [["doctor"], ["to-onnx", "-o", "m.onnx"], ["models"]])
def test_a_deleted_working_folder_is_one_line(tmp_path: Path, command: list[str]) -> None:
    """torch's oneMKL aborts the process in a deleted folder: the command line refuses first."""
    gone = tmp_path / "gone"
    gone.mkdir()
    code = f"import os; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); os.execv({sys.executable!r}, ["
    code += f"{sys.executable!r}, '-c', 'from mmexport.cli import main; main()', *{command!r}])"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        "error: the current folder no longer exists (it was removed after this shell entered it); "
        "cd to an existing folder and run it again"
    ]
    budget.record("deleted working folder", f"{command[0]}: one error")


INTERRUPT_AT = '''"""SIGINT to this process when MMEXPORT_SIGINT_AT begins to import (a Ctrl-C then)."""
import os
import signal
import sys

_TARGET = os.environ.get("MMEXPORT_SIGINT_AT")


class _InterruptOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == _TARGET:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None


if _TARGET:
    sys.meta_path.insert(0, _InterruptOnImport())
'''


@pytest.mark.parametrize(
    ("module", "command"),
    [
        ("numpy", ["models"]),
        ("click", ["models"]),
        ("mmexport.core.spec", ["models"]),
        ("mmexport.cli.app", ["doctor"]),
        ("onnx", ["inspect", "x.onnx"]),
        ("torch", ["doctor"]),
    ],
)
def test_ctrl_c_while_the_command_line_starts_is_one_line(
    tmp_path: Path, module: str, command: list[str]
) -> None:
    """Ctrl-C in the first fraction of a second lands while numpy, click, onnx or torch import:
    exit 130 and one line, not a KeyboardInterrupt traceback through the import machinery."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(INTERRUPT_AT)
    write_tiny(tmp_path, "x.onnx")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(shim), str(SRC)]),
        "MMEXPORT_SIGINT_AT": module,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    code = "from mmexport.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 130, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "interrupted" in result.stderr
    budget.record("Ctrl-C while starting", f"during import of {module}: exit 130, one line")


def test_sigint_default_is_restored_for_library_users() -> None:
    """Importing mmexport (not running its command line) installs no signal handler."""
    code = (
        "import signal, mmexport, mmexport.cli as c; print(signal.getsignal(2) is signal.default_int_handler)"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "True", result.stderr


def test_a_huge_error_line_is_cut() -> None:
    from mmexport.cli.app import shortened

    line = shortened("word " + "x" * 5_000_000)
    assert len(line) < 2100 and line.endswith("... (4998005 more characters)")
    assert shortened("short") == "short"
