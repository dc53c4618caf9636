"""Synthetic multimodal task and numpy log-mel features."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mmexport.data.audio import log_mel, num_frames
from mmexport.data.synthetic import (
    HELDOUT_SEED,
    IMAGE_LABELS,
    IMAGE_MEAN,
    IMAGE_STD,
    LABELS,
    PAD_ID,
    TRAIN_SEED,
    VOCAB,
    SyntheticTask,
    decode,
    encode,
)


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_data_package_does_not_import_torch() -> None:
    code = "import sys, mmexport.data.synthetic, mmexport.data.audio; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("with_audio", [False, True])
def test_same_seed_gives_identical_batches(with_audio: bool) -> None:
    first, second = SyntheticTask(with_audio, seed=7), SyntheticTask(with_audio, seed=7)
    for _ in range(2):
        feed_a, labels_a = first.batch(6, height=40, width=48, frames=30)
        feed_b, labels_b = second.batch(6, height=40, width=48, frames=30)
        _assert_same(feed_a, feed_b)
        np.testing.assert_array_equal(labels_a, labels_b)


def test_different_seeds_differ_and_heldout_is_separate() -> None:
    assert HELDOUT_SEED != TRAIN_SEED
    feed_a, _ = SyntheticTask(True, seed=TRAIN_SEED).batch(4, height=32, width=32)
    feed_b, _ = SyntheticTask(True, seed=HELDOUT_SEED).batch(4, height=32, width=32)
    assert not np.array_equal(feed_a["image"], feed_b["image"])


@pytest.mark.parametrize(
    ("with_audio", "height", "width", "seq", "frames"),
    [
        (False, 40, 56, 7, None),
        (True, 33, 70, 16, 20),
        (True, 32, 32, 1, 16),
        (False, 96, 64, None, None),
    ],
)
def test_shapes_and_dtypes(
    with_audio: bool, height: int, width: int, seq: int | None, frames: int | None
) -> None:
    task = SyntheticTask(with_audio, seed=1)
    feed, labels = task.batch(5, height=height, width=width, seq=seq, frames=frames)
    assert list(feed) == task.input_names
    assert feed["image"].shape == (5, 3, height, width)
    assert feed["image"].dtype == np.float32
    assert feed["tokens"].dtype == np.int64
    assert feed["tokens"].shape[0] == 5
    if seq is not None:
        assert feed["tokens"].shape[1] == seq
    if with_audio:
        assert feed["audio"].dtype == np.float32
        assert feed["audio"].shape == (5, 64, frames if frames is not None else 101)
        assert np.isfinite(feed["audio"]).all()
    assert labels.shape == (5,)
    assert labels.dtype == np.int64


def test_pixels_are_normalized_from_unit_range() -> None:
    feed, _ = SyntheticTask(False, seed=2).batch(8, height=48, width=48)
    mean = np.asarray(IMAGE_MEAN, dtype=np.float32)[None, :, None, None]
    std = np.asarray(IMAGE_STD, dtype=np.float32)[None, :, None, None]
    pixels = feed["image"] * std + mean
    assert pixels.min() >= -1e-5
    assert pixels.max() <= 1 + 1e-5


def test_tokens_are_padded_at_the_end_and_in_range() -> None:
    tokens, _ = SyntheticTask(True, seed=3).batch(200, height=32, width=32, frames=16)
    tokens = tokens["tokens"]
    assert tokens.min() >= 0
    assert tokens.max() < len(VOCAB)
    valid = tokens != PAD_ID
    assert valid[:, 0].all()
    # once a row reaches padding it stays padding
    assert (np.diff(valid.astype(np.int8), axis=1) <= 0).all()
    # default length is the longest question of the batch
    assert valid[:, -1].any()
    # the keyword appears at several positions
    keyword_ids = {VOCAB.index(w) for w in ("colour", "color", "hue", "shape", "form", "pitch", "note")}
    positions = {int(np.flatnonzero(np.isin(row, list(keyword_ids)))[0]) for row in tokens}
    assert len(positions) >= 4


def test_short_seq_keeps_the_keyword() -> None:
    feed, labels = SyntheticTask(True, seed=4).batch(50, height=32, width=32, seq=1, frames=16)
    words = [VOCAB[int(t)] for t in feed["tokens"][:, 0]]
    for word, label in zip(words, labels, strict=True):
        group = {0: ("colour", "color", "hue"), 1: ("shape", "form"), 2: ("pitch", "note")}
        assert word in group[int(label) // 3]


@pytest.mark.parametrize("with_audio", [False, True])
def test_labels_are_balanced(with_audio: bool) -> None:
    task = SyntheticTask(with_audio, seed=5)
    assert task.labels == (LABELS if with_audio else IMAGE_LABELS)
    labels = np.concatenate([lab for _, lab in task.samples(1800, 600, height=32, width=32, frames=16)])
    counts = np.bincount(labels, minlength=len(LABELS))
    classes = len(task.labels)
    assert counts[classes:].sum() == 0
    share = counts[:classes] / labels.size
    assert np.all(np.abs(share - 1 / classes) < 0.05)


def test_samples_yields_requested_count() -> None:
    sizes = [len(lab) for _, lab in SyntheticTask(False).samples(10, 4, height=32, width=32, seq=16)]
    assert sizes == [4, 4, 2]


def test_encode_decode_round_trip() -> None:
    ids = encode("what colour is the object")
    assert ids.dtype == np.int64
    assert PAD_ID not in ids
    assert decode(np.concatenate([ids, [PAD_ID, PAD_ID]])) == "what colour is the object"


def test_log_mel_shape_dtype_and_pitch() -> None:
    t = np.arange(16000) / 16000
    low, high = np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 3000 * t)
    mel = log_mel(low)
    assert mel.shape == (64, 101) == (64, num_frames(16000))
    assert mel.dtype == np.float32
    assert np.isfinite(mel).all()
    batched = log_mel(np.stack([low, high]))
    assert batched.shape == (2, 64, 101)
    np.testing.assert_allclose(batched[0], mel, rtol=1e-5, atol=1e-5)
    assert batched[1].mean(axis=1).argmax() > mel.mean(axis=1).argmax()
    assert log_mel(np.zeros(2400)).shape == (64, 16)
