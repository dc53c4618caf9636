"""What to-onnx tells the user besides pass/fail, and what it leaves on disk."""

from __future__ import annotations

import json

import pytest

from conftest import TINY_FILE
from mmexport.core.errors import ArtifactError, ModelLoadError, ParityError
from mmexport.core.manifest import read_manifest
from mmexport.export import ParityConfig, to_onnx
from tiny_models import TINY_SPEC

QUICK = ParityConfig(random_points=0)


@pytest.mark.slow
def test_a_spec_wider_than_the_model_supports_is_named(tmp_path):
    with pytest.raises(ParityError) as info:
        to_onnx(f"{TINY_FILE}:short_text_only", tmp_path / "m.onnx", parity=QUICK)
    message = str(info.value)
    assert message.startswith("the model itself fails in PyTorch at shape point max")
    assert "tokens=4x12" in message and "ValueError: at most 8 tokens" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_notes_for_unranged_integers_and_unused_inputs(tmp_path):
    data = json.loads(json.dumps(TINY_SPEC))
    del data["inputs"][1]["range"]
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(data))
    result = to_onnx(f"{TINY_FILE}:ignores_text", tmp_path / "m.onnx", spec=spec_file, parity=QUICK)
    assert any("input 'tokens' (int64) has no \"range\"" in n for n in result.notes)
    assert any("input 'tokens' is not used by the model" in n for n in result.notes)


@pytest.mark.slow
def test_a_factory_file_imports_modules_beside_it(tmp_path):
    (tmp_path / "my_layers.py").write_text("from tiny_models import TinyFusion\n")
    (tmp_path / "net.py").write_text(
        "from my_layers import TinyFusion\n"
        "from tiny_models import TINY_SPEC as MMEXPORT_SPEC\n"
        "def build():\n    return TinyFusion().eval()\n"
    )
    result = to_onnx(f"{tmp_path / 'net.py'}:build", tmp_path / "out" / "m.onnx", parity=QUICK)
    assert result.parity.passed


def test_a_failed_run_removes_the_folders_it_created(tmp_path):
    with pytest.raises(ModelLoadError):
        to_onnx("nope.py:build", tmp_path / "new" / "deeper" / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_reexport_as_one_file_removes_stale_external_data(tmp_path):
    out = tmp_path / "m.onnx"
    (tmp_path / "m.onnx.data").write_bytes(b"old weights")
    to_onnx(f"{TINY_FILE}:tiny", out, parity=QUICK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]


@pytest.mark.slow
def test_a_manifest_with_a_broken_spec_names_the_file(tmp_path):
    out = tmp_path / "m.onnx"
    to_onnx(f"{TINY_FILE}:tiny", out, parity=QUICK)
    manifest = json.loads((tmp_path / "m.onnx.json").read_text())
    manifest["spec"]["dims"]["seq"]["min"] = 99
    (tmp_path / "m.onnx.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"m\.onnx\.json: holds an invalid spec: spec dim 'seq'"):
        read_manifest(out)


@pytest.mark.slow
def test_staging_left_by_a_killed_run_is_removed_by_the_next(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    abandoned = tmp_path / f".m.onnx.{int(dead.stdout)}.abc123.staging"
    abandoned.mkdir()
    (abandoned / "m.onnx").write_bytes(b"half written")
    to_onnx(f"{TINY_FILE}:tiny", tmp_path / "m.onnx", parity=QUICK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]


@pytest.mark.slow
def test_sigkill_during_export_leaves_nothing_valid_and_a_rerun_succeeds(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "m.onnx"
    cmd = [sys.executable, "-m", "mmexport.cli", "to-onnx", f"{TINY_FILE}:tiny", "-o", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".m.onnx.*.staging")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and not (tmp_path / "m.onnx.json").exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]


def test_an_interrupt_swallowed_on_the_way_still_stops_publishing(tmp_path):
    """torch's exporter can swallow KeyboardInterrupt; the CLI's SIGINT handler sets INTERRUPTED
    and publish refuses to move the artifact into place."""
    from mmexport.core.files import INTERRUPTED, publish, staging_dir

    final = tmp_path / "model.onnx"
    INTERRUPTED.set()
    try:
        with staging_dir(final) as stage:
            staged = stage / final.name
            staged.write_bytes(b"onnx")
            with pytest.raises(KeyboardInterrupt):
                publish(staged, final)
    finally:
        INTERRUPTED.clear()
    assert not final.exists() and list(tmp_path.iterdir()) == []
