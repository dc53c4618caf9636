"""Hostile input files (images, wav, text, .npz, ``index.jsonl``): each is refused with one
DataError naming the file and what is wrong, before anything large is allocated or read."""

from __future__ import annotations

import contextlib
import io
import struct
import wave
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

from data.datafiles import spec_with, tone, write_png, write_wav
from mmexport.core.errors import DataError, SpecError
from mmexport.data.feed_files import read_feeds
from mmexport.data.feeds import parse_label
from mmexport.data.folders import read_index
from mmexport.data.preprocess import load_file

SPEC = spec_with()


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


@pytest.mark.parametrize("side", [10_000, 20_000, 60_000])
def test_decompression_bomb_png_is_one_data_error(tmp_path: Path, side: int) -> None:
    path = _png_claiming(tmp_path / "bomb.png", side, side)
    with pytest.raises(DataError, match=r"bomb\.png"):
        load_file(path, SPEC.input("image"), SPEC)


def _valid_bytes(tmp_path: Path, kind: str) -> bytes:
    if kind == "image":
        rng = np.random.default_rng(0)
        return write_png(tmp_path / "ok.png", rng.integers(0, 256, (40, 40, 3))).read_bytes()
    return write_wav(tmp_path / "ok.wav", tone(0.2), width=3).read_bytes()


@pytest.mark.parametrize("kind", ["image", "audio"])
@given(data=st.data())
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_damaged_image_or_wav_is_read_or_one_data_error(
    tmp_path: Path, kind: str, data: st.DataObject
) -> None:
    raw = bytearray(_valid_bytes(tmp_path, kind))
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=3))
    for at, value in flips:
        raw[at] = value
    path = tmp_path / ("damaged.png" if kind == "image" else "damaged.wav")
    path.write_bytes(bytes(raw[:cut]))
    with contextlib.suppress(DataError):
        load_file(path, SPEC.input(kind), SPEC)


@pytest.mark.parametrize(("width", "channels", "cut"), [(2, 1, 1), (3, 1, 2), (2, 2, 3), (4, 2, 5)])
def test_wav_cut_mid_sample_or_mid_frame_keeps_its_whole_frames(
    tmp_path: Path, width: int, channels: int, cut: int
) -> None:
    signal = np.stack([tone(0.2)] * channels, axis=1) if channels > 1 else tone(0.2)
    whole = write_wav(tmp_path / "whole.wav", signal, width=width).read_bytes()
    frame = width * channels
    (tmp_path / "cut.wav").write_bytes(whole[:-cut])  # the header still claims every frame
    (tmp_path / "frames.wav").write_bytes(whole[: -cut - (frame - cut % frame) % frame])
    cut_mel = load_file(tmp_path / "cut.wav", SPEC.input("audio"), SPEC)
    np.testing.assert_array_equal(cut_mel, load_file(tmp_path / "frames.wav", SPEC.input("audio"), SPEC))


def test_hour_long_wav_is_refused_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "hour.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes(b"\0\0" * 16000)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"data")
    raw[at + 4 : at + 8] = struct.pack("<I", 3600 * 16000 * 2)  # an hour of 16-bit samples
    path.write_bytes(bytes(raw))
    with path.open("r+b") as f:
        f.truncate(at + 8 + 3600 * 16000 * 2)  # sparse: the hour costs no disk

    def no_reading(*args: object) -> bytes:
        raise AssertionError("samples read before the frame count was checked")

    monkeypatch.setattr(wave.Wave_read, "readframes", no_reading)
    with pytest.raises(DataError, match="frames"):
        load_file(path, SPEC.input("audio"), SPEC)


def test_long_text_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    with path.open("wb") as f:
        f.truncate(50 << 20)  # sparse: 50 MB of NUL bytes, no disk used
    with pytest.raises(DataError, match=r"long\.txt"):
        load_file(path, SPEC.input("tokens"), SPEC)


NPY_MAGIC = b"\x93NUMPY"


def _npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return path


def _npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    f = io.BytesIO()
    npy_format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
    return f.getvalue()


@pytest.mark.parametrize("name", ["image", "image.bin", "image.NPY", "image.npy/"])
def test_npz_member_without_npy_suffix_has_its_header_checked(tmp_path: Path, name: str) -> None:
    header = _npy_header((1 << 20, 1 << 20, 1 << 10))  # 4 TiB claimed by a few bytes
    path = _npz(tmp_path / "bomb.npz", {name: header + b"\0" * 16})
    with pytest.raises(DataError, match=r"bomb\.npz"):
        read_feeds([(None, path)], SPEC)


def test_npz_holding_more_than_the_spec_allows_is_refused_before_loading(tmp_path: Path) -> None:
    zeros = np.zeros((1, 4 << 20), dtype=np.float32)  # 16 MiB of zeros, a few KiB compressed
    buffer = io.BytesIO()
    np.save(buffer, zeros)
    path = _npz(tmp_path / "zeros.npz", {"tokens.npy": buffer.getvalue()})
    assert path.stat().st_size < 1 << 20
    with pytest.raises(DataError, match=r"zeros\.npz"):
        read_feeds([(None, path)], SPEC)


def test_a_small_valid_npz_still_reads(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ones((1, 5), dtype=np.int64))
    path = _npz(tmp_path / "ok.npz", {"tokens.npy": buffer.getvalue()})
    assert read_feeds([(None, path)], SPEC)["tokens"].shape == (1, 5)


INDEX_LINES = [
    b'{"image": "a.png", "tokens": "\xff\xfe.txt"}\n',
    b'{"image": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
    b'{"image": "a.png", "label": ' + b"9" * 5000 + b"}\n",
    b'{"image": "a.png", "label": ' + b"[" * 40 + b"]" * 40 + b"}\n",
    b'{"image": "a.png", "image": "b.png"}\n',
    b'{"image": "a.png", "label": NaN}\n',
]


@pytest.mark.parametrize("line", INDEX_LINES)
def test_hostile_index_line_is_one_data_error(tmp_path: Path, line: bytes) -> None:
    (tmp_path / "index.jsonl").write_bytes(line)
    with pytest.raises(DataError, match=r"index\.jsonl"):
        read_index(tmp_path, SPEC, None)


def test_index_line_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "index.jsonl").write_bytes(b'{"image": "' + b"a" * (8 << 20) + b'"}\n')
    with pytest.raises(DataError, match=r"index\.jsonl"):
        read_index(tmp_path, SPEC, None)


def _no_vocab(data: dict[str, Any]) -> None:
    tokens = next(i for i in data["inputs"] if i["name"] == "tokens")
    del tokens["preprocess"]["vocab"]
    del tokens["range"]
    data["outputs"] = ["logits"]


@pytest.mark.parametrize("word", ["9" * 5000, "9" * 20, "-" + "9" * 20, "300"])
def test_token_ids_beyond_the_dtype_are_one_data_error(tmp_path: Path, word: str) -> None:
    spec = spec_with(_no_vocab)
    if word == "300":  # fits int64; refused for an int8 input
        spec = spec_with(lambda d: (_no_vocab(d), d["inputs"][1].update(dtype="int8")))
    path = tmp_path / "ids.txt"
    path.write_text(f"1 2 {word}")
    with pytest.raises(DataError, match=r"ids\.txt"):
        load_file(path, spec.input("tokens"), spec)


@pytest.mark.parametrize("label", ["9" * 30, "-" + "9" * 30, "9" * 5000])
def test_label_beyond_int64_is_one_data_error(label: str) -> None:
    spec = spec_with(_no_vocab)
    with pytest.raises(DataError, match="label"):
        parse_label(label, spec, sample="s")
    with pytest.raises(DataError, match="label"):
        parse_label(int(label[:100]), spec, sample="s")


PREPROCESS_VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["rgb", "bgr", "x", "", "<pad>", "what"]),
    st.booleans(),
    st.lists(st.floats(-10, 10), max_size=4),
    st.lists(st.text(max_size=3), max_size=4),
)
KEYS = {
    "image": ["mean", "std", "scale", "channel_order"],
    "log_mel": ["sample_rate", "n_fft", "hop_length", "n_mels", "duration_s"],
    "tokens": ["vocab", "pad", "lowercase", "unk"],
}
DTYPES = ["float32", "int64", "int8", "uint8", "bool", "float16"]


@given(
    kind=st.sampled_from(list(KEYS)),
    key_index=st.integers(0, 4),
    value=PREPROCESS_VALUES,
    dtype=st.sampled_from([None, *DTYPES]),
)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_spec_that_loads_reads_its_files_or_says_why(
    tmp_path: Path, kind: str, key_index: int, value: Any, dtype: str | None
) -> None:
    """Whatever preprocess value a spec is accepted with, reading a file for it never crashes."""
    name = {"image": "image", "log_mel": "audio", "tokens": "tokens"}[kind]
    key = KEYS[kind][key_index % len(KEYS[kind])]

    def change(data: dict[str, Any]) -> None:
        inp = next(i for i in data["inputs"] if i["name"] == name)
        inp["preprocess"][key] = value
        if dtype is not None:
            inp["dtype"] = dtype
            inp.pop("range", None)

    try:
        spec = spec_with(change)
    except SpecError:
        return
    files = {
        "image": lambda p: write_png(p / "x.png", np.full((40, 40, 3), 128)),
        "audio": lambda p: write_wav(p / "x.wav", tone(0.2)),
        "tokens": lambda p: (p / "x.txt").write_text("what is the object 3") and p / "x.txt",
    }
    path = files[name](tmp_path)
    with contextlib.suppress(DataError):
        load_file(Path(path), spec.input(name), spec)


@pytest.mark.parametrize("word", ["²", "٣" * 30])
def test_words_that_look_like_digits_are_one_data_error(tmp_path: Path, word: str) -> None:
    spec = spec_with(_no_vocab)
    path = tmp_path / "ids.txt"
    path.write_text(f"1 {word}")
    with pytest.raises(DataError, match="not a token id"):
        load_file(path, spec.input("tokens"), spec)


def test_log_mel_input_of_another_rank_is_one_data_error(tmp_path: Path) -> None:
    spec = spec_with(lambda d: d["inputs"][2].update(shape=["batch", 64, "frames", 1]))
    path = write_wav(tmp_path / "a.wav", tone(0.2))
    with pytest.raises(DataError, match="n_mels, frames"):
        load_file(path, spec.input("audio"), spec)


def _valid_npz(tmp_path: Path) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ones((1, 5), dtype=np.int64))
    return _npz(tmp_path / "ok.npz", {"tokens.npy": buffer.getvalue()}).read_bytes()


@given(data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_damaged_npz_is_read_or_one_data_error(tmp_path: Path, data: st.DataObject) -> None:
    raw = bytearray(_valid_npz(tmp_path))
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=4))
    for at, value in flips:
        raw[at] = value
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(raw[:cut]))
    with contextlib.suppress(DataError):
        read_feeds([(None, path)], SPEC)


def test_encrypted_npz_member_is_one_data_error(tmp_path: Path) -> None:
    raw = bytearray(_valid_npz(tmp_path))
    for signature in (b"PK\x03\x04", b"PK\x01\x02"):  # set the "encrypted" flag in both headers
        at = raw.index(signature) + (6 if signature == b"PK\x03\x04" else 8)
        raw[at] |= 1
    path = tmp_path / "locked.npz"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"locked\.npz"):
        read_feeds([(None, path)], SPEC)


@given(data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_damaged_npy_is_read_or_one_data_error(tmp_path: Path, data: st.DataObject) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ones((1, 5), dtype=np.int64))
    raw = bytearray(buffer.getvalue())
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=4))
    for at, value in flips:
        raw[at] = value
    path = tmp_path / "damaged.npy"
    path.write_bytes(bytes(raw[:cut]))
    with contextlib.suppress(DataError):
        read_feeds([("tokens", path)], SPEC)
    with contextlib.suppress(DataError):
        load_file(path, SPEC.input("tokens"), SPEC)


@given(
    line=st.binary(max_size=60) | st.from_regex(rb'\{"(image|label|name|tokens)": .{0,20}\}', fullmatch=True)
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_index_line_is_read_or_one_data_error(tmp_path: Path, line: bytes) -> None:
    (tmp_path / "index.jsonl").write_bytes(line + b"\n")
    with contextlib.suppress(DataError):
        read_index(tmp_path, SPEC, None)
