"""One file -> one sample's array, as the spec's preprocess entry says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datafiles import HUGE, random_pixels, spec_with, tone, write_lying_npy, write_png, write_wav

from mmexport.core.errors import DataError
from mmexport.core.spec import ModelSpec
from mmexport.data.audio import log_mel
from mmexport.data.preprocess import load_file
from mmexport.data.synthetic import IMAGE_MEAN, IMAGE_STD, SyntheticTask, encode

FUSION = spec_with()


def _load(path: Path, name: str, spec: ModelSpec = FUSION) -> np.ndarray:
    return load_file(path, spec.input(name), spec, sample="calib/0007")


def _raises(match: str, field: str = "image") -> Any:
    """Context manager: a DataError naming the test sample and ``field``, matching ``match``."""

    class _Check:
        def __enter__(self) -> None:
            self._ctx = pytest.raises(DataError, match=match)
            self._info = self._ctx.__enter__()

        def __exit__(self, *exc: Any) -> bool:
            handled = self._ctx.__exit__(*exc)
            error = self._info.value
            assert error.sample == "calib/0007"
            assert error.field == field
            assert str(error).startswith(f"sample 'calib/0007' input '{field}': ")
            assert "\n" not in str(error)
            return bool(handled)

    return _Check()


# -- images ---------------------------------------------------------------------------------


def test_png_of_synthetic_pixels_gives_the_synthetic_array(tmp_path: Path) -> None:
    feed, _ = SyntheticTask(with_audio=False, seed=3).batch(1, height=40, width=56)
    mean = np.asarray(IMAGE_MEAN, dtype=np.float32)[:, None, None]
    std = np.asarray(IMAGE_STD, dtype=np.float32)[:, None, None]
    pixels = np.round((feed["image"][0] * std + mean) * 255).astype(np.uint8)
    path = write_png(tmp_path / "image.png", pixels.transpose(1, 2, 0))

    image = _load(path, "image")

    assert image.shape == (3, 40, 56) and image.dtype == np.float32
    np.testing.assert_allclose(image, (pixels / np.float32(255) - mean) / std, rtol=0, atol=1e-5)
    np.testing.assert_allclose(image, feed["image"][0], rtol=0, atol=0.5 / 255 / IMAGE_STD[0] + 1e-5)


def test_image_in_range_keeps_its_size_and_out_of_range_is_resized_keeping_aspect(tmp_path: Path) -> None:
    def narrow(data: dict[str, Any]) -> None:
        data["dims"]["height"] = {"min": 32, "opt": 64, "max": 64}
        data["dims"]["width"] = {"min": 32, "opt": 64, "max": 96}

    spec = spec_with(narrow)
    assert _load(write_png(tmp_path / "a.png", random_pixels(50, 90)), "image", spec).shape == (3, 50, 90)
    assert _load(write_png(tmp_path / "b.png", random_pixels(128, 96)), "image", spec).shape == (3, 64, 48)
    assert _load(write_png(tmp_path / "c.png", random_pixels(16, 20)), "image", spec).shape == (3, 32, 40)
    # No aspect-preserving fit: each side goes to its nearest size in range.
    assert _load(write_png(tmp_path / "d.png", random_pixels(20, 400)), "image", spec).shape == (3, 32, 96)


def test_bgr_reverses_channels_and_scale_applies(tmp_path: Path) -> None:
    def bgr(data: dict[str, Any]) -> None:
        data["inputs"][0]["preprocess"] = {
            "kind": "image",
            "mean": [0, 0, 0],
            "std": [1, 1, 1],
            "scale": 1.0,
            "channel_order": "bgr",
        }

    pixels = random_pixels(33, 35)
    image = _load(write_png(tmp_path / "x.png", pixels), "image", spec_with(bgr))
    np.testing.assert_array_equal(image, pixels.transpose(2, 0, 1)[::-1].astype(np.float32))


def test_grayscale_becomes_rgb_and_alpha_is_refused(tmp_path: Path) -> None:
    gray = random_pixels(40, 40, channels=1)
    image = _load(write_png(tmp_path / "gray.png", gray, mode="L"), "image")
    assert image.shape == (3, 40, 40)
    np.testing.assert_array_equal(image[0], image[2])

    rgba = write_png(tmp_path / "rgba.png", random_pixels(40, 40, channels=4), mode="RGBA")
    with _raises(r"expected 3 channels, got 4 \(RGBA image\)"):
        _load(rgba, "image")


def test_rgb_file_for_a_one_channel_input_is_an_error(tmp_path: Path) -> None:
    def one_channel(data: dict[str, Any]) -> None:
        data["inputs"][0]["shape"] = ["batch", 1, "height", "width"]
        data["inputs"][0]["preprocess"].update(mean=[0.5], std=[0.2])

    spec = spec_with(one_channel)
    with _raises(r"expected 1 channel, got 3 \(RGB image\)"):
        _load(write_png(tmp_path / "rgb.png", random_pixels(40, 40)), "image", spec)
    gray = _load(write_png(tmp_path / "g.png", random_pixels(40, 40, channels=1), mode="L"), "image", spec)
    assert gray.shape == (1, 40, 40)


def test_unreadable_and_missing_image(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with _raises("cannot read 'bad.png' as an image"):
        _load(tmp_path / "bad.png", "image")
    with _raises("does not exist"):
        _load(tmp_path / "missing.png", "image")


def test_16_bit_images_are_refused_not_clipped(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((64, 64), 40000, dtype=np.uint16)).save(tmp_path / "deep.png")
    with _raises("only 8-bit images are read"):
        _load(tmp_path / "deep.png", "image")


# -- text ------------------------------------------------------------------------------------


def test_text_punctuation_is_not_a_word(tmp_path: Path) -> None:
    (tmp_path / "q.txt").write_text("What colour is the object? Please!")
    np.testing.assert_array_equal(
        _load(tmp_path / "q.txt", "tokens"), encode("what colour is the object please")
    )


def test_text_maps_words_through_the_vocab_lowercased(tmp_path: Path) -> None:
    (tmp_path / "q.txt").write_text("What COLOUR is\nthe object \n")
    tokens = _load(tmp_path / "q.txt", "tokens")
    assert tokens.dtype == np.int64
    np.testing.assert_array_equal(tokens, encode("what colour is the object"))


def test_text_without_lowercase_keeps_case(tmp_path: Path) -> None:
    def keep_case(data: dict[str, Any]) -> None:
        data["inputs"][1]["preprocess"]["lowercase"] = False

    (tmp_path / "q.txt").write_text("What colour")
    with _raises(r"'q.txt': word 'What' is not in the vocab", field="tokens"):
        _load(tmp_path / "q.txt", "tokens", spec_with(keep_case))


def test_unknown_word_is_named_with_the_file(tmp_path: Path) -> None:
    (tmp_path / "q.txt").write_text("what flavour is the object")
    with _raises(r"'q.txt': word 'flavour' is not in the vocab", field="tokens"):
        _load(tmp_path / "q.txt", "tokens")


def test_text_longer_than_max_is_an_error_shorter_than_min_is_padded(tmp_path: Path) -> None:
    def seq(data: dict[str, Any]) -> None:
        data["dims"]["seq"] = {"min": 6, "opt": 6, "max": 8}

    spec = spec_with(seq)
    (tmp_path / "long.txt").write_text("what is the colour of the object here now")
    with _raises(r"'long.txt' has 9 tokens, expected at most 8", field="tokens"):
        _load(tmp_path / "long.txt", "tokens", spec)
    (tmp_path / "short.txt").write_text("colour of the object")
    np.testing.assert_array_equal(
        _load(tmp_path / "short.txt", "tokens", spec), [*encode("colour of the object"), 0, 0]
    )


def test_empty_text_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "q.txt").write_text("  \n")
    with _raises("holds no words", field="tokens"):
        _load(tmp_path / "q.txt", "tokens")


# -- audio -----------------------------------------------------------------------------------


def test_wav_gives_the_log_mel_of_its_samples(tmp_path: Path) -> None:
    signal = tone(0.25)
    path = write_wav(tmp_path / "a.wav", signal)
    mel = _load(path, "audio")
    quantized = (np.round(signal * 32768) / 32768).astype(np.float32)
    assert mel.shape == (64, 1 + 4000 // 160) and mel.dtype == np.float32
    np.testing.assert_allclose(mel, log_mel(quantized), rtol=0, atol=1e-4)


@pytest.mark.parametrize(("width", "atol"), [(1, 1.0), (2, 1e-2), (3, 1e-4), (4, 1e-4)])
def test_pcm_widths_and_stereo_mix_down(tmp_path: Path, width: int, atol: float) -> None:
    signal = tone(0.2)
    stereo = np.stack([signal, np.zeros_like(signal)], axis=1)
    mel = _load(write_wav(tmp_path / "s.wav", stereo, width=width), "audio")
    reference = log_mel(signal / 2)  # the channels' mean
    # Quantization noise shows where the mel power is tiny; compare the bins that hold the tone.
    loud = reference > np.log(1e-2)
    np.testing.assert_allclose(mel[loud], reference[loud], rtol=0, atol=atol)
    assert (mel.argmax(axis=0) == reference.argmax(axis=0)).all()


def test_wrong_sample_rate_names_both_rates(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", tone(0.2, rate=8000), rate=8000)
    with _raises(r"'a.wav' is sampled at 8000 Hz, expected 16000 Hz", field="audio"):
        _load(path, "audio")


def test_too_few_frames_is_an_error(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", tone(0.05))
    with _raises(r"'a.wav' \(0.050 s\) gives 6 frames, expected 16 to 1000", field="audio"):
        _load(path, "audio")


def test_duration_cuts_or_pads_the_wave(tmp_path: Path) -> None:
    def fixed(data: dict[str, Any]) -> None:
        data["inputs"][2]["preprocess"]["duration_s"] = 0.5

    spec = spec_with(fixed)
    assert _load(write_wav(tmp_path / "a.wav", tone(0.2)), "audio", spec).shape == (64, 51)
    assert _load(write_wav(tmp_path / "b.wav", tone(2.0)), "audio", spec).shape == (64, 51)


def test_not_a_wav(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"RIFF....")
    with _raises("cannot read 'a.wav' as a PCM wav file", field="audio"):
        _load(tmp_path / "a.wav", "audio")


# -- raw arrays -------------------------------------------------------------------------------


def test_npy_is_checked_against_the_shape_without_batch_axis(tmp_path: Path) -> None:
    np.save(tmp_path / "ok.npy", np.zeros((3, 40, 50), dtype=np.float64))
    image = _load(tmp_path / "ok.npy", "image")
    assert image.shape == (3, 40, 50) and image.dtype == np.float32

    np.save(tmp_path / "batched.npy", np.zeros((1, 3, 40, 50), dtype=np.float32))
    with _raises(r"expected rank 3 \[3, height, width\], got shape \[1, 3, 40, 50\]"):
        _load(tmp_path / "batched.npy", "image")
    np.save(tmp_path / "small.npy", np.zeros((3, 8, 50), dtype=np.float32))
    with _raises(r"axis 2 \(dim 'height'\) is 8, expected in \[32, 512\]"):
        _load(tmp_path / "small.npy", "image")
    np.save(tmp_path / "four.npy", np.zeros((4, 40, 50), dtype=np.float32))
    with _raises(r"axis 1 \(size\) is 4, expected 3"):
        _load(tmp_path / "four.npy", "image")


def test_npy_dtype_kind_must_match(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.ones(5, dtype=np.float32))
    with _raises(r"expected integer values \(int64\), got float32", field="tokens"):
        _load(tmp_path / "t.npy", "tokens")
    np.save(tmp_path / "i.npy", np.ones(5, dtype=np.int32))
    assert _load(tmp_path / "i.npy", "tokens").dtype == np.int64


@pytest.mark.parametrize("shape", [HUGE, (3, 40, 50)])
def test_npy_header_claiming_more_than_the_file_holds(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = write_lying_npy(tmp_path / "big.npy", shape)
    claimed = str(list(shape)).replace("[", r"\[").replace("]", r"\]")
    with _raises(rf"'{path}': its header says shape {claimed} of float32 .* but the file holds 16 bytes"):
        _load(path, "image")
    path.write_bytes(b"not numpy")
    with _raises(r"cannot read 'big.npy' as a .npy array: "):
        _load(path, "image")


def test_input_without_preprocess_needs_npy(tmp_path: Path) -> None:
    def plain(data: dict[str, Any]) -> None:
        del data["inputs"][0]["preprocess"]

    path = write_png(tmp_path / "x.png", random_pixels(40, 40))
    with _raises("the spec gives this input no preprocess"):
        _load(path, "image", spec_with(plain))


def test_unknown_words_map_to_unk_when_the_spec_names_one(tmp_path: Path) -> None:
    from mmexport.core.errors import SpecError
    from mmexport.data.synthetic import VOCAB

    spec = spec_with()
    data = spec.to_dict()
    data["inputs"][1]["preprocess"]["unk"] = VOCAB[1]
    with_unk = ModelSpec.from_dict(data)
    (tmp_path / "q.txt").write_text("what colour is the gizmo")
    ids = _load(tmp_path / "q.txt", "tokens", with_unk)
    assert ids[-1] == 1 and list(ids[:-1]) == list(encode("what colour is the"))
    with _raises("word 'gizmo' is not in the vocab", field="tokens"):
        _load(tmp_path / "q.txt", "tokens")
    data["inputs"][1]["preprocess"]["unk"] = "gizmo"
    with pytest.raises(SpecError, match="unk 'gizmo' must be a word of the vocab"):
        ModelSpec.from_dict(data)
