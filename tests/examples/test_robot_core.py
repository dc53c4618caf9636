"""examples/robot_core.py without ROS: preprocessing as the spec says, decisions, latency, errors."""

from __future__ import annotations

import copy
import wave

import numpy as np
import pytest
from PIL import Image
from robot_core import (
    AudioWindow,
    Decision,
    DecisionCore,
    LatencyLog,
    Preprocessor,
    decide,
    top1,
)

from mmexport.core.errors import DataError, InputError, SpecError
from mmexport.core.spec import ModelSpec
from mmexport.data.preprocess import load_image, load_wav
from mmexport.data.synthetic import encode

from .toy_model import SPEC

COMMAND = "what colour is the object"


def frame(height: int = 128, width: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def tone(samples: int = 16000, hz: float = 440.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(samples) / 16000)).astype(np.float32)


def solid(channel: int, size: int = 64) -> np.ndarray:
    pixels = np.zeros((size, size, 3), np.uint8)
    pixels[..., channel] = 255
    return pixels


@pytest.fixture(scope="module")
def preprocess() -> Preprocessor:
    return Preprocessor(SPEC)


def test_feeds_are_valid_for_the_default_models_spec(preprocess, toy_session):
    feeds = preprocess(frame(96, 160), COMMAND, tone())
    assert toy_session.spec == SPEC  # the toy model carries the default model's spec
    checked = toy_session.validate(feeds)
    assert {k: (v.shape, v.dtype) for k, v in checked.items()} == {
        "image": ((1, 3, 96, 160), np.float32),
        "tokens": ((1, 5), np.int64),
        "audio": ((1, 64, 101), np.float32),
    }


def test_image_is_what_load_image_makes_of_the_same_pixels(preprocess, tmp_path):
    pixels = frame(72, 90, seed=3)
    Image.fromarray(pixels).save(tmp_path / "frame.png")
    inp = SPEC.input("image")
    expected = load_image(tmp_path / "frame.png", inp, SPEC, sample="frame")
    np.testing.assert_array_equal(preprocess.image(pixels), expected)


def test_bgr_channel_order_and_scale_follow_the_spec(tmp_path):
    data = copy.deepcopy(SPEC.to_dict())
    data["inputs"][0]["preprocess"].update({"channel_order": "bgr", "scale": 1 / 127.5})
    spec = ModelSpec.from_dict(data)
    pixels = frame(40, 40, seed=4)
    Image.fromarray(pixels).save(tmp_path / "frame.png")
    expected = load_image(tmp_path / "frame.png", spec.input("image"), spec, sample="frame")
    np.testing.assert_array_equal(Preprocessor(spec).image(pixels), expected)


def test_command_tokens_follow_the_vocab_and_are_cached(preprocess):
    tokens = preprocess.tokens("What colour is the object?")
    np.testing.assert_array_equal(tokens, encode(COMMAND))
    assert preprocess.tokens("What colour is the object?") is tokens
    with pytest.raises(DataError, match="word 'banana' is not in the vocab"):
        preprocess.tokens("what colour is the banana")


def test_audio_is_what_load_wav_makes_of_the_same_samples(preprocess, tmp_path):
    pcm = np.round(tone(12000, 700.0) * 32767).astype("<i2")
    with wave.open(str(tmp_path / "a.wav"), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes(pcm.tobytes())
    expected = load_wav(tmp_path / "a.wav", SPEC.input("audio"), SPEC, sample="a")
    np.testing.assert_array_equal(preprocess.audio(pcm.astype(np.float32) / 32768.0), expected)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            frame().astype(np.float32),
            "camera frame must be an HxWx3 uint8 array, got shape 128x128x3 float32",
        ),
        (frame()[..., 0], "got shape 128x128 uint8"),
        (np.zeros((64, 64, 4), np.uint8), "got shape 64x64x4 uint8"),
        ([[1, 2, 3]], "got list"),
        (frame(600, 800), "camera frame is 600x800 (HxW); the model takes heights 32-512 and widths 32-512"),
    ],
)
def test_bad_frames_are_one_clear_error(preprocess, bad, message):
    with pytest.raises(InputError) as caught:
        preprocess(bad, COMMAND, tone())
    assert caught.value.input == "image"
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            tone().reshape(2, -1),
            "audio must be a non-empty 1-D float array (mono, 16000 Hz), got shape 2x8000",
        ),
        (np.zeros(16000, np.int16), "got shape 16000 int16"),
        (tone(800), "800 samples (0.050 s) gives 6 frames, expected 16 to 1000"),
        (None, "this model takes audio, and none was given"),
    ],
)
def test_bad_audio_is_one_clear_error(preprocess, bad, message):
    with pytest.raises(InputError, match="input 'audio'") as caught:
        preprocess(frame(), COMMAND, bad)
    assert message in str(caught.value)


def test_a_command_that_is_not_text_is_refused(preprocess):
    with pytest.raises(InputError, match="command must be a str, got bytes"):
        preprocess(frame(), b"what colour", tone())


def test_specs_with_inputs_this_core_cannot_make_are_refused_at_construction():
    data = copy.deepcopy(SPEC.to_dict())
    data["inputs"].append({"name": "imu", "modality": "sensor", "dtype": "float32", "shape": ["batch", 6]})
    with pytest.raises(SpecError, match="input 'imu' is not an image, text or audio input"):
        Preprocessor(ModelSpec.from_dict(data))
    del data["inputs"][-1]
    del data["inputs"][0]["preprocess"]
    with pytest.raises(SpecError, match="input 'image' needs preprocess kind 'image'"):
        Preprocessor(ModelSpec.from_dict(data))


def test_decide_gives_the_sessions_top1_and_the_hand_computed_label(preprocess, toy_session):
    for channel, label in [(0, "red"), (1, "green"), (2, "blue")]:
        feeds = preprocess(solid(channel), COMMAND, tone())
        decision = decide(toy_session, feeds)
        logits = toy_session.run(feeds)["logits"][0]
        probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert decision.label == SPEC.outputs[0].labels[int(np.argmax(logits))] == label
        assert decision.score == pytest.approx(float(probabilities.max()))
        assert decision.latency_ms > 0


def test_top1_gives_no_label_for_non_finite_outputs_and_refuses_batches():
    label, score = top1({"logits": np.full((1, 9), np.nan, np.float32)}, SPEC)
    assert label is None and np.isnan(score)
    with pytest.raises(InputError, match="one decision needs batch 1 with 9 scores"):
        top1({"logits": np.zeros((2, 9), np.float32)}, SPEC)


def test_latency_percentiles_over_the_last_window_logged_every_n_calls():
    lines: list[str] = []
    log = LatencyLog("inference", window=100, every=50, log=lines.append)
    returned = [log.record(float(ms)) for ms in range(1, 101)]
    assert [i for i, r in enumerate(returned) if r is not None] == [49, 99]
    stats = returned[-1]
    assert (stats.p50, stats.p99, stats.max, stats.window, stats.calls) == (50.5, 99.01, 100.0, 100, 100)
    assert lines[-1] == "inference: p50 50.50 ms, p99 99.01 ms, max 100.00 ms (last 100 of 100 calls)"
    for ms in range(101, 151):  # the window rolls: now 51..150
        log.record(float(ms))
    stats = log.stats()
    assert (stats.p50, stats.p99, stats.max, stats.calls, len(lines)) == (100.5, 149.01, 150.0, 150, 3)
    with pytest.raises(ValueError, match="no calls recorded"):
        LatencyLog().stats()


def test_audio_window_keeps_the_last_second_of_the_stream():
    window = AudioWindow(sample_rate=10, seconds=1.0)
    np.testing.assert_array_equal(window.wave(), np.zeros(10, np.float32))
    stream = np.arange(1, 26, dtype=np.float32)
    for chunk in np.split(stream, [3, 4, 11, 25]):  # chunks of 3, 1, 7, 14 and 0 samples
        window.push(chunk)
    np.testing.assert_array_equal(window.wave(), stream[-10:])
    window.push(np.float32([100, 101]))
    np.testing.assert_array_equal(window.wave(), np.concatenate([stream[-8:], [100, 101]]))
    with pytest.raises(InputError, match="audio chunk must be a 1-D float array, got shape 4 int64"):
        window.push(np.arange(4))


def test_decision_core_keeps_the_newest_inputs_between_ticks(toy_session):
    lines: list[str] = []
    core = DecisionCore(toy_session, COMMAND, latency=LatencyLog(window=2, log=lines.append))
    assert core.tick() is None  # no frame yet
    core.set_frame(solid(0))
    core.push_audio(tone(800))
    first = core.tick()
    core.set_frame(solid(2))
    second = core.tick()
    assert isinstance(first, Decision) and (first.label, second.label) == ("red", "blue")
    assert core.latency.calls == 2 and len(lines) == 1 and core.preprocess_ms > 0
    core.set_command("what colour is the banana")
    with pytest.raises(DataError, match="banana"):
        core.tick()
