"""Publishing a split folder: all or nothing, an earlier export kept until the new one is in place."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmexport.core.files import staging_dir
from mmexport.split import files as split_files
from mmexport.split.files import publish_folder


def _composition(text: str) -> str:
    """A composition.json that lists the part files these tests write (what publishing owns)."""
    return json.dumps({"parts": [{"file": "part.onnx"}, {"file": "stale.onnx"}], "text": text})


def _export(folder: Path, text: str) -> None:
    folder.mkdir()
    (folder / "composition.json").write_text(_composition(text))
    (folder / "part.onnx").write_text(text)


def _contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_publish_replaces_an_earlier_export_whole(tmp_path):
    folder = tmp_path / "out"
    _export(folder, "old")
    (folder / "stale.onnx").write_text("old")
    with staging_dir(folder) as stage:
        (stage / "composition.json").write_text("new")
        publish_folder(stage, folder)
    assert _contents(folder) == {"composition.json": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_interrupted_publish_keeps_the_earlier_export(tmp_path, monkeypatch, error):
    folder = tmp_path / "out"
    _export(folder, "old")
    real = os.replace

    def failing(src, dst):
        if Path(dst) == folder and "staging" in Path(src).name:
            raise error()
        return real(src, dst)

    monkeypatch.setattr(split_files.os, "replace", failing)
    with pytest.raises(error), staging_dir(folder) as stage:
        (stage / "composition.json").write_text("new")
        publish_folder(stage, folder)
    assert _contents(folder) == {"composition.json": _composition("old"), "part.onnx": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "nothing left beside it"


def test_ctrl_c_during_a_split_export_keeps_the_earlier_one(tmp_path, monkeypatch):
    """An interrupt that a library swallowed is honoured before the folder is moved into place."""
    import threading

    from mmexport.core.spec import ModelSpec
    from mmexport.export import ExportConfig, ParityConfig
    from mmexport.split.export import to_onnx_split

    from .split_models import MMEXPORT_SPEC, tiny

    folder = tmp_path / "tiny"
    _export(folder, "old")
    interrupted = threading.Event()
    interrupted.set()
    monkeypatch.setattr(split_files, "INTERRUPTED", interrupted)
    with pytest.raises(KeyboardInterrupt):
        to_onnx_split(
            tiny(), folder, spec=ModelSpec.from_dict(MMEXPORT_SPEC), parity=ParityConfig(random_points=0),
            export=ExportConfig(exporter="torchscript"),
        )  # fmt: skip
    assert _contents(folder) == {"composition.json": _composition("old"), "part.onnx": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]
