"""Re-exporting into a split folder never removes what the user put there (notes, a calib folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmexport.core.errors import ArtifactError
from mmexport.core.files import staging_dir
from mmexport.split import files as split_files
from mmexport.split.files import check_folder, publish_folder


def _earlier_export(folder: Path) -> None:
    folder.mkdir()
    (folder / "composition.json").write_text(json.dumps({"parts": [{"file": "image.onnx"}]}))
    for name in ("image.onnx", "image.onnx.json", "image.onnx.data", "image.calib"):
        (folder / name).write_text("old")


def _user_files(folder: Path) -> None:
    (folder / "notes.txt").write_text("mine")
    (folder / "calib").mkdir()
    (folder / "calib" / "0.npz").write_text("mine too")


def test_a_folder_with_user_files_is_refused_naming_them(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    _earlier_export(folder)
    _user_files(folder)
    with pytest.raises(ArtifactError) as caught:
        check_folder(folder)
    assert "calib, notes.txt" in str(caught.value)
    assert str(folder) in str(caught.value)
    assert caught.value.hint


def test_publish_refuses_user_files_and_leaves_everything(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    _earlier_export(folder)
    with staging_dir(folder) as stage:
        (stage / "composition.json").write_text("new")
        _user_files(folder)  # after the check at the start of the run
        with pytest.raises(ArtifactError, match=r"notes\.txt"):
            publish_folder(stage, folder)
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "calib" / "0.npz").read_text() == "mine too"
    assert (folder / "image.onnx").read_text() == "old"


def test_publish_replaces_only_what_the_earlier_export_wrote(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    _earlier_export(folder)
    with staging_dir(folder) as stage:
        (stage / "composition.json").write_text("new")
        (stage / "audio.onnx").write_text("new")
        publish_folder(stage, folder)
    assert {p.name for p in folder.iterdir()} == {"composition.json", "audio.onnx"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_file_that_appears_during_the_swap_is_moved_back(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "out"
    _earlier_export(folder)
    real = os.replace

    def racing(src, dst):
        if Path(src) == folder:  # the earlier export is being moved aside: a user writes a note
            (folder / "late.txt").write_text("mine")
        return real(src, dst)

    monkeypatch.setattr(split_files.os, "replace", racing)
    with staging_dir(folder) as stage:
        (stage / "composition.json").write_text("new")
        publish_folder(stage, folder)
    assert (folder / "late.txt").read_text() == "mine"
    assert (folder / "composition.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
