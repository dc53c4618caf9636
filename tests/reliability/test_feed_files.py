"""Array files given to ``mmexport run`` (``-i image=x.npy``, ``-i feeds.npz``): a header that
claims more data than the file holds is a ``DataError`` before anything is allocated, never a
MemoryError (numpy allocates what the header says, then reads)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.lib import format as npy_format

from mmexport.cli.app import cli
from mmexport.core.errors import DataError
from mmexport.core.spec import ModelSpec
from mmexport.data.feed_files import read_feeds
from reliability import budget
from runtime.onnx_models import SPEC, feeds

HUGE = (10**6, 10**6)  # 3.6 TiB of float32


def lying_npy(path: Path, shape: tuple[int, ...] = HUGE) -> Path:
    with open(path, "wb") as f:
        npy_format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(b"\0" * 16)
    return path


def lying_npz(path: Path, shape: tuple[int, ...] = HUGE) -> Path:
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("image.npy", "w") as member,
    ):
        npy_format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": shape})
        member.write(b"\0" * 16)
    return path


@pytest.mark.parametrize("shape", [HUGE, (2, 3, 8, 8)])
def test_an_npy_header_that_lies_about_its_size(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = lying_npy(tmp_path / "image.npy", shape)
    with pytest.raises(DataError, match=r"image\.npy.*header .* but the file holds 16 bytes"):
        read_feeds([("image", path)], ModelSpec.from_dict(SPEC))
    budget.record("array files", f".npy header {shape}: DataError")


@pytest.mark.parametrize("shape", [HUGE, (2, 3, 8, 8)])
def test_an_npz_member_that_lies_about_its_size(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = lying_npz(tmp_path / "feeds.npz", shape)
    with pytest.raises(DataError, match=r"feeds\.npz.*'image'.*header .* but the archive holds 16 bytes"):
        read_feeds([(None, path)], ModelSpec.from_dict(SPEC))
    budget.record("array files", f".npz member header {shape}: DataError")


def test_real_arrays_still_read(tmp_path: Path) -> None:
    feed = feeds()
    np.save(tmp_path / "image.npy", np.asfortranarray(feed["image"]))
    np.savez_compressed(tmp_path / "feeds.npz", **feed)
    got = read_feeds([("image", tmp_path / "image.npy")], ModelSpec.from_dict(SPEC))
    np.testing.assert_array_equal(got["image"], feed["image"])
    got = read_feeds([(None, tmp_path / "feeds.npz")], ModelSpec.from_dict(SPEC))
    np.testing.assert_array_equal(got["tokens"], feed["tokens"])


def test_lying_files_on_the_command_line_are_one_line(tiny_graph_onnx: Path, tmp_path: Path) -> None:
    for args in (
        ["-i", f"image={lying_npy(tmp_path / 'a.npy')}"],
        ["-i", str(lying_npz(tmp_path / "b.npz"))],
    ):
        result = CliRunner().invoke(cli, ["run", str(tiny_graph_onnx), *args])
        assert (result.exit_code == 1 and result.exception is None) or isinstance(
            result.exception, SystemExit
        )
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, (
            result.stderr
        )
