"""Inputs whose handling used to be unclear: each is now read as documented or refused in one line
naming it (spec values, file names, wav formats, archives, text files, token ids, outputs)."""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from data.datafiles import spec_with, write_png
from mmexport.cli.app import cli
from mmexport.core.errors import DataError, SpecError
from mmexport.core.spec import ModelSpec
from mmexport.data.preprocess import load_file, text_to_tokens
from mmexport.data.wav_files import read_wav
from reliability import budget
from runtime.onnx_models import SPEC, write_tiny

SPEC_TEXT = json.dumps(SPEC)


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


# -- specs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_tolerance_that_is_not_finite_is_a_spec_error(value: float) -> None:
    """atol NaN compares false with everything: it made every parity row fail, blamed on the model."""
    data = json.loads(SPEC_TEXT)
    data["outputs"] = [{"name": "logits", "atol": value}]
    with pytest.raises(SpecError, match=r"atol must be a finite number >= 0, got (nan|inf)"):
        ModelSpec.from_dict(data)


def test_a_spec_file_over_16_mib_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    with open(path, "wb") as f:
        f.truncate(2 << 30)  # 2 GiB, sparse: reading it would take the memory
    with pytest.raises(SpecError, match=r"spec.json' is larger than 16 MiB \(a spec is a few KiB\)"):
        ModelSpec.from_file(path)


def test_a_spec_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_bytes(b"\xef\xbb\xbf" + SPEC_TEXT.encode())
    assert ModelSpec.from_file(path).input_names == ["image", "tokens"]


# -- paths ------------------------------------------------------------------------------------------


@pytest.fixture
def no_log_records():
    """Log records naming a path that is not UTF-8 would carry its surrogate escapes into the
    test report, which pytest-xdist cannot send between processes."""
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.usefixtures("no_log_records")
def test_a_folder_name_that_is_not_utf8_is_refused_alike_by_every_command(tmp_path: Path) -> None:
    folder = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9"))
    folder.mkdir()
    path = write_tiny(folder)
    expected = f"error: {str(path).encode('utf-8', 'backslashreplace').decode()}: path is not UTF-8"
    for args in (
        ["run", str(path)],
        ["fp16", str(path), "-o", str(tmp_path / "t16.onnx")],
        ["calibrate", str(path), "-o", str(tmp_path / "t8.onnx")],
        ["inspect", str(path)],
        ["bench", str(path), "--iterations", "1"],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, (args[0], result.output)
        assert _error_lines(result.output)[0].startswith(expected), (args[0], result.output)
        budget.record("paths that are not UTF-8", f"{args[0]}: one error")
    result = CliRunner().invoke(cli, ["fp16", str(write_tiny(tmp_path)), "-o", str(folder / "t16.onnx")])
    assert result.exit_code == 1 and "path is not UTF-8" in result.output
    assert not (folder / "t16.onnx").exists()


# -- wav --------------------------------------------------------------------------------------------

PCM_GUID = bytes.fromhex("0100000000001000800000aa00389b71")


def _extensible_wav(
    path: Path, samples: list[int], width: int, channels: int = 1, guid: bytes = PCM_GUID
) -> Path:
    """WAVE_FORMAT_EXTENSIBLE (0xFFFE), as most recorders write 24-bit and multi-channel audio."""
    data = b"".join(int(v).to_bytes(width, "little", signed=width > 1) for v in samples)
    fmt = struct.pack(
        "<HHLLHH", 0xFFFE, channels, 16000, 16000 * width * channels, width * channels, 8 * width
    )
    fmt += struct.pack("<HHL", 22, 8 * width, (1 << channels) - 1) + guid
    body = (
        b"WAVE" + b"fmt " + struct.pack("<L", len(fmt)) + fmt + b"data" + struct.pack("<L", len(data)) + data
    )
    path.write_bytes(b"RIFF" + struct.pack("<L", len(body)) + body)
    return path


@pytest.mark.parametrize(("width", "full"), [(2, 1 << 15), (3, 1 << 23), (4, 1 << 31)])
def test_extensible_pcm_wav_is_read(tmp_path: Path, width: int, full: int) -> None:
    path = _extensible_wav(
        tmp_path / "x.wav", [0, full // 2, -full, full // 4, 0, -full // 2], width, channels=2
    )
    values, rate = read_wav(path, sample="x", field="audio")
    assert rate == 16000
    np.testing.assert_allclose(values, [0.25, -0.375, -0.25])  # channels averaged to mono


def test_extensible_wav_of_another_subformat_is_one_data_error(tmp_path: Path) -> None:
    path = _extensible_wav(
        tmp_path / "f.wav", [0, 1], 4, guid=bytes.fromhex("0300000000001000800000aa00389b71")
    )
    with pytest.raises(DataError, match="WAVE_FORMAT_EXTENSIBLE with a subformat that is not PCM"):
        read_wav(path, sample="f", field="audio")


# -- archives ---------------------------------------------------------------------------------------


def test_a_zip_given_to_unbundle_is_named_as_a_zip(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("bundle.json", "{}")
    result = CliRunner().invoke(cli, ["unbundle", str(archive), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert _error_lines(result.output) == [
        f"error: {archive}: is not a tar archive (gzip or plain tar), got zip "
        "(a bundle is the .tar.gz that 'mmexport bundle' writes)"
    ]
    assert not (tmp_path / "out").exists()


# -- text and token ids -----------------------------------------------------------------------------

FUSION = spec_with()
TOKENS = FUSION.input("tokens")


def test_a_huge_unknown_word_is_quoted_short() -> None:
    """A text given on the command line has no file-size bound: its unknown word is cut when quoted."""
    with pytest.raises(DataError) as caught:
        text_to_tokens("what " + "x" * 5_000_000, TOKENS, FUSION, sample="s", source="the command")
    assert len(str(caught.value)) < 400
    assert re.search(r"word 'x{30,40}\.\.\.' \(5000000 characters\) is not in the vocab", str(caught.value))


def test_a_byte_order_mark_does_not_make_the_first_word_unknown(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_bytes(b"\xef\xbb\xbfwhat colour is the object")
    plain = tmp_path / "p.txt"
    plain.write_bytes(b"what colour is the object")
    np.testing.assert_array_equal(load_file(path, TOKENS, FUSION), load_file(plain, TOKENS, FUSION))
    np.testing.assert_array_equal(
        text_to_tokens("\ufeffwhat colour", TOKENS, FUSION, sample="s"),
        text_to_tokens("what colour", TOKENS, FUSION, sample="s"),
    )


NO_VOCAB = ModelSpec.from_dict(json.loads(SPEC_TEXT))  # tokens: ids in [0, 10), no vocab


@given(ids=st.lists(st.integers(-2, 11) | st.integers(-(2**40), 2**40), min_size=1, max_size=6))
@budget.FUZZ
def test_token_ids_outside_the_range_are_refused(ids: list[int]) -> None:
    """-1 is a valid index for ONNX Gather (the last row): it must not reach the model."""
    inp = NO_VOCAB.input("tokens")
    text = " ".join(map(str, ids))
    if all(0 <= i < 10 for i in ids):
        assert text_to_tokens(text, inp, NO_VOCAB, sample="s").tolist() == ids
        budget.record("token ids", "inside the range: read")
        return
    with pytest.raises(DataError, match=r"token id -?\d+ is outside \[0, 10\) \(the spec's range\)"):
        text_to_tokens(text, inp, NO_VOCAB, sample="s")
    budget.record("token ids", "outside the range: DataError")


def test_token_id_minus_one_in_an_array_is_refused_by_run(tmp_path: Path) -> None:
    path = write_tiny(tmp_path)
    rng = np.random.default_rng(0)
    image = tmp_path / "image.npy"
    np.save(image, rng.standard_normal((1, 3, 8, 8)).astype(np.float32))
    for tokens in (np.array([[1, -1, 2]]), np.array([[1, 10, 2]])):
        np.save(tmp_path / "tokens.npy", tokens)
        args = ["run", str(path), "-i", f"image={image}", "-i", f"tokens={tmp_path / 'tokens.npy'}"]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert "values must be in [0, 10) (the spec's range)" in _error_lines(result.output)[0]


# -- pixels -----------------------------------------------------------------------------------------


def test_a_scale_beyond_float16_is_a_data_error_not_an_overflow_warning(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        image = next(i for i in data["inputs"] if i["name"] == "image")
        image["dtype"] = "float16"
        image["preprocess"]["scale"] = 1000.0

    spec = spec_with(change)
    path = write_png(tmp_path / "x.png", np.full((40, 40, 3), 128))
    with pytest.raises(DataError, match=r"normalized pixels reach .* beyond what float16 holds"):
        load_file(path, spec.input("image"), spec)


# -- outputs ----------------------------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_split_output_that_is_a_symbolic_link_is_refused_before_the_export(tmp_path: Path) -> None:
    real = tmp_path / "fusion"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    result = CliRunner().invoke(cli, ["to-onnx", "--split", "-o", str(link)])
    assert result.exit_code == 1, result.output
    assert _error_lines(result.output)[0].startswith(
        f"error: {link}: is a symbolic link (to {real}); a split export replaces its folder as a whole"
    )
    assert link.is_symlink() and not any(real.iterdir())


def test_a_swap_left_halfway_by_a_killed_unbundle_is_finished_by_the_next(tmp_path: Path) -> None:
    model = write_tiny(tmp_path)
    archive = tmp_path / "b.tar.gz"
    assert (
        CliRunner().invoke(cli, ["bundle", str(model), "--target", "gpu-trt10", "-o", str(archive)]).exit_code
        == 0
    )
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["unbundle", str(archive), "-o", str(out)]).exit_code == 0
    # what a run killed after its two moves leaves: the earlier bundle aside, with a user's file in it
    aside = tmp_path / f".out.{_dead_pid()}.x1.old"
    aside.mkdir()
    for entry in out.iterdir():
        if entry.is_file():
            (aside / entry.name).write_bytes(entry.read_bytes())
    (aside / "notes.txt").write_text("mine")
    empty = tmp_path / f".out.{_dead_pid()}.x2.old"  # killed before its first move
    empty.mkdir()
    alive = tmp_path / f".out.{os.getpid()}.x3.old"  # a run still going: not touched
    alive.mkdir()
    result = CliRunner().invoke(cli, ["unbundle", str(archive), "-o", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert not aside.exists() and not empty.exists() and alive.exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "bundle.json").is_file()


def test_a_swap_killed_between_its_moves_gets_the_earlier_output_back(tmp_path: Path) -> None:
    from mmexport.core.files import recover_abandoned_aside

    out = tmp_path / "out"
    aside = tmp_path / f".out.{_dead_pid()}.x1.old"
    aside.mkdir()
    (aside / "bundle.json").write_text("{}")
    assert recover_abandoned_aside(out, lambda _folder: lambda _name: True) == [aside]
    assert (out / "bundle.json").read_text() == "{}" and not aside.exists()


def test_bench_outputs_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk while bench writes its CSV, Markdown or PNG leaves the earlier files whole."""
    import errno

    path = write_tiny(tmp_path)
    outputs = {"--csv": tmp_path / "b.csv", "--markdown": tmp_path / "b.md", "--plot": tmp_path / "b.png"}
    for out in outputs.values():
        out.write_text("earlier")

    def no_space(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    args = ["bench", str(path), "--iterations", "2", "--warmup", "0"]
    result = CliRunner().invoke(cli, [*args, *(x for o, p in outputs.items() for x in (o, str(p)))])
    assert result.exit_code == 1, result.output
    for out in outputs.values():
        assert out.read_text() == "earlier"
        assert f"error: {out}: cannot be written: no space left on device" in result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
