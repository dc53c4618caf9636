"""``run -o out.npz`` goes through the atomic writer: a failed write (a full disk, a killed run)
leaves an earlier good file whole and no partial file."""

from __future__ import annotations

import errno

import numpy as np
from click.testing import CliRunner

from mmexport.cli.app import cli
from runtime.onnx_models import feeds


def _failing_savez(file, **arrays):  # type: ignore[no-untyped-def]
    file.write(b"PK\x03\x04 part of an archive")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_keeps_the_earlier_output_file(tiny_path, tmp_path, monkeypatch) -> None:
    np.savez(tmp_path / "feeds.npz", **feeds())
    out = tmp_path / "out.npz"
    args = ["run", str(tiny_path), "-i", str(tmp_path / "feeds.npz"), "-o", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    good = out.read_bytes()
    monkeypatch.setattr(np, "savez", _failing_savez)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert "no space left on device" in result.output.lower()
    assert out.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feeds.npz", "out.npz"]


def test_a_failed_first_write_leaves_no_file(tiny_path, tmp_path, monkeypatch) -> None:
    np.savez(tmp_path / "feeds.npz", **feeds())
    monkeypatch.setattr(np, "savez", _failing_savez)
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(
        cli, ["run", str(tiny_path), "-i", str(tmp_path / "feeds.npz"), "-o", str(out)]
    )
    assert result.exit_code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feeds.npz"]
