"""Two runs writing one output are serialized by ``<output>.lock``: the second is refused with a
clear error (never one run's manifest beside the other's model, both exiting 0), and a lock left
by a killed run never blocks the next one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli
from mmexport.core.errors import ArtifactError
from mmexport.core.files import output_lock, staging_dir

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def _fp16(source: Path, out: Path):  # type: ignore[no-untyped-def]
    args = ["fp16", str(source), "-o", str(out), "--eval-samples", "0", "--samples", "8", "-q"]
    return CliRunner().invoke(cli, args)


def test_a_second_writer_is_refused_and_a_killed_holder_never_blocks(
    tiny_graph_onnx: Path, tmp_path: Path
) -> None:
    out = tmp_path / "m.fp16.onnx"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, f"{out}.lock"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        refused = _fp16(tiny_graph_onnx, out)
        assert refused.exit_code != 0
        assert "is being written by another mmexport run" in refused.output
        assert not out.exists() and not Path(f"{out}.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert Path(f"{out}.lock").exists(), "the killed run's lock file is still there"
    done = _fp16(tiny_graph_onnx, out)
    assert done.exit_code == 0, done.output
    assert out.is_file() and Path(f"{out}.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fp16.onnx", "m.fp16.onnx.json"]


def test_staging_for_an_output_being_written_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    with output_lock(out), pytest.raises(ArtifactError, match="another mmexport run"), staging_dir(out):
        pass
    with staging_dir(out):
        assert Path(f"{out}.lock").exists()
    assert list(tmp_path.iterdir()) == []
