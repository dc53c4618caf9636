"""Deterministic synthetic multimodal question answering (numpy only).

Each sample is an image with one coloured shape on a noisy background, a short English-like
question as token ids and, when audio is enabled, one second of a sine tone turned into a
log-mel spectrogram. The label is the answer to the question, so it depends on the text and on
the modality the question is about: colour and shape questions need the image, pitch questions
need the audio.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from mmexport.data.audio import log_mel

PAD_ID = 0
"""Token id used for padding; padding always goes at the end of a row."""

VOCAB: list[str] = [
    "<pad>",
    "what",
    "which",
    "is",
    "the",
    "of",
    "does",
    "have",
    "has",
    "tell",
    "me",
    "kind",
    "this",
    "object",
    "item",
    "thing",
    "figure",
    "tone",
    "sound",
    "colour",
    "color",
    "hue",
    "shape",
    "form",
    "pitch",
    "note",
    "hey",
    "please",
    "quick",
    "question",
    "now",
    "here",
    "in",
    "example",
    "if",
    "you",
    "can",
    "right",
]
"""Token vocabulary; the token id is the index in this list (PAD is 0)."""

LABELS: list[str] = ["red", "green", "blue", "circle", "square", "triangle", "low", "mid", "high"]
"""Answer vocabulary; label ids index this list."""

IMAGE_LABELS: list[str] = LABELS[:6]
"""Answers reachable without audio (the task without audio never asks about pitch)."""

IMAGE_MEAN: list[float] = [0.47, 0.47, 0.47]
"""Per-channel mean used to normalize [0, 1] pixels."""

IMAGE_STD: list[float] = [0.18, 0.18, 0.18]
"""Per-channel standard deviation used to normalize [0, 1] pixels."""

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 64

TRAIN_SEED = 0
"""Seed of the training stream."""

HELDOUT_SEED = 1_000_003
"""Seed of the held-out stream; training never uses it."""

_TOKEN_ID = {word: i for i, word in enumerate(VOCAB)}

_KEYWORDS = (("colour", "color", "hue"), ("shape", "form"), ("pitch", "note"))
_NOUNS = (("object", "item", "thing", "figure"),) * 2 + (("tone", "sound"),)
_TEMPLATES = (
    "what {k} is the {n}",
    "which {k} does the {n} have",
    "the {n} has which {k}",
    "what is the {k} of the {n}",
    "tell me the {k} of the {n}",
    "what {k} is this {n}",
    "what kind of {k} does the {n} have",
    "{k} of the {n}",
)
_SHORTEST = "{k} of the {n}"  # keyword first, so any truncation keeps it
_PREFIXES = ("", "hey", "please", "quick question", "hey please", "now")
_SUFFIXES = ("", "please", "here", "now", "in this example", "if you can", "right now")
_PITCH_HZ = ((150.0, 350.0), (600.0, 1100.0), (1800.0, 3500.0))


def encode(text: str) -> np.ndarray:
    """Whitespace-split `text` into int64 token ids (raises KeyError for unknown words)."""
    return np.array([_TOKEN_ID[word] for word in text.lower().split()], dtype=np.int64)


def decode(ids: np.ndarray) -> str:
    """Token ids back to text, dropping padding."""
    return " ".join(VOCAB[int(i)] for i in np.asarray(ids).reshape(-1) if int(i) != PAD_ID)


class SyntheticTask:
    """Seeded stream of batches; the same seed and the same calls give identical arrays."""

    def __init__(
        self,
        with_audio: bool,
        seed: int = TRAIN_SEED,
        question_weights: tuple[float, ...] | None = None,
    ) -> None:
        """`with_audio` adds the "audio" input and pitch questions; `seed` fixes the stream;
        `question_weights` are the relative frequencies of colour/shape(/pitch) questions
        (default uniform)."""
        self.with_audio = with_audio
        self.seed = seed
        num_types = 3 if with_audio else 2
        weights = np.ones(num_types) if question_weights is None else np.asarray(question_weights)
        if weights.shape != (num_types,) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"question_weights needs {num_types} non-negative values")
        self._question_p = weights / weights.sum()
        self._rng = np.random.default_rng(seed)

    @property
    def labels(self) -> list[str]:
        """Label names this task can produce (label id = index)."""
        return LABELS if self.with_audio else IMAGE_LABELS

    @property
    def input_names(self) -> list[str]:
        """Keys of the feed dict, in model argument order."""
        return ["image", "tokens", "audio"] if self.with_audio else ["image", "tokens"]

    def batch(
        self,
        n: int,
        *,
        height: int = 128,
        width: int = 128,
        seq: int | None = None,
        frames: int | None = None,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """`n` samples: feed dict (image [n,3,H,W] float32, tokens [n,S] int64, audio
        [n,64,F] float32) and int64 labels [n].

        `seq` pads (or, if too short, shortens) questions to exactly that length, default the
        longest question; `frames` sets the spectrogram length, default one second (101 frames).
        """
        if n < 1 or height < 1 or width < 1:
            raise ValueError("n, height and width must be positive")
        if (seq is not None and seq < 1) or (frames is not None and frames < 1):
            raise ValueError("seq and frames must be positive")
        rng = self._rng
        qtype = rng.choice(len(self._question_p), size=n, p=self._question_p)
        colour = rng.integers(0, 3, n)
        shape = rng.integers(0, 3, n)
        pitch = rng.integers(0, 3, n)
        labels = np.where(qtype == 0, colour, np.where(qtype == 1, 3 + shape, 6 + pitch))
        feed = {
            "image": self._images(colour, shape, height, width),
            "tokens": self._tokens(qtype, seq),
        }
        if self.with_audio:
            feed["audio"] = self._audio(pitch, frames)
        return feed, labels.astype(np.int64)

    def samples(
        self,
        n: int,
        batch_size: int,
        *,
        height: int = 128,
        width: int = 128,
        seq: int | None = None,
        frames: int | None = None,
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """`n` samples in batches of `batch_size` (the last one may be smaller)."""
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            yield self.batch(size, height=height, width=width, seq=seq, frames=frames)

    def _images(self, colour: np.ndarray, shape: np.ndarray, height: int, width: int) -> np.ndarray:
        rng = self._rng
        n = colour.shape[0]
        radius = np.asarray(rng.uniform(0.12, 0.3, n) * min(height, width))
        cx = np.asarray(rng.uniform(radius, np.maximum(radius, width - radius)))
        cy = np.asarray(rng.uniform(radius, np.maximum(radius, height - radius)))
        flip = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        yy = (np.arange(height, dtype=np.float32) + 0.5)[None, :, None]
        xx = (np.arange(width, dtype=np.float32) + 0.5)[None, None, :]
        r = radius.astype(np.float32)[:, None, None]
        dx = (xx - cx.astype(np.float32)[:, None, None]) / r
        dy = (yy - cy.astype(np.float32)[:, None, None]) / r
        circle = dx * dx + dy * dy <= 1.0
        square = np.maximum(np.abs(dx), np.abs(dy)) <= 0.85
        ty = dy * flip.astype(np.float32)[:, None, None]  # triangles point up or down
        triangle = (ty >= -1.0) & (ty <= 0.8) & (np.abs(dx) <= (ty + 1.0) / math.sqrt(3.0))
        kind = shape[:, None, None]
        mask = np.where(kind == 0, circle, np.where(kind == 1, square, triangle))[:, None]

        gray = rng.uniform(0.25, 0.65, (n, 1, 1, 1)) + rng.uniform(-0.05, 0.05, (n, 3, 1, 1))
        fill = rng.uniform(0.0, 0.3, (n, 3))
        fill[np.arange(n), colour] = rng.uniform(0.75, 1.0, n)
        sigma = rng.uniform(0.03, 0.12, (n, 1, 1, 1)).astype(np.float32)
        noise = rng.standard_normal((n, 3, height, width), dtype=np.float32) * sigma
        pixels = np.where(mask, fill[:, :, None, None], gray).astype(np.float32) + noise
        np.clip(pixels, 0.0, 1.0, out=pixels)
        mean = np.asarray(IMAGE_MEAN, dtype=np.float32)[None, :, None, None]
        std = np.asarray(IMAGE_STD, dtype=np.float32)[None, :, None, None]
        return ((pixels - mean) / std).astype(np.float32)

    def _question(self, qtype: int, seq: int | None) -> list[int]:
        rng = self._rng
        keyword = str(rng.choice(_KEYWORDS[qtype]))
        noun = str(rng.choice(_NOUNS[qtype]))
        core = str(rng.choice(_TEMPLATES)).format(k=keyword, n=noun).split()
        prefix = str(rng.choice(_PREFIXES)).split()
        suffix = str(rng.choice(_SUFFIXES)).split()
        words = prefix + core + suffix
        if seq is not None and len(words) > seq:
            words = prefix + core
        if seq is not None and len(words) > seq:
            words = core
        if seq is not None and len(words) > seq:
            words = _SHORTEST.format(k=keyword, n=noun).split()[:seq]
        return [_TOKEN_ID[word] for word in words]

    def _tokens(self, qtype: np.ndarray, seq: int | None) -> np.ndarray:
        rows = [self._question(int(q), seq) for q in qtype]
        length = seq if seq is not None else max(len(row) for row in rows)
        tokens = np.full((len(rows), length), PAD_ID, dtype=np.int64)
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = row
        return tokens

    def _audio(self, pitch: np.ndarray, frames: int | None) -> np.ndarray:
        rng = self._rng
        n = pitch.shape[0]
        num_samples = SAMPLE_RATE if frames is None else (frames - 1) * HOP_LENGTH
        num_samples = max(num_samples, 1)
        bounds = np.asarray(_PITCH_HZ)[pitch]
        freq = np.asarray(rng.uniform(bounds[:, 0], bounds[:, 1]))
        amplitude = np.asarray(rng.uniform(0.1, 0.8, n))
        phase = np.asarray(rng.uniform(0.0, 2.0 * math.pi, n))
        sigma = np.asarray(rng.uniform(0.01, 0.1, n))
        t = (np.arange(num_samples) / SAMPLE_RATE)[None]
        angle = (2.0 * math.pi * freq[:, None] * t + phase[:, None]).astype(np.float32)
        wave = amplitude[:, None].astype(np.float32) * np.sin(angle)
        noise = rng.standard_normal((n, num_samples), dtype=np.float32)
        wave += sigma[:, None].astype(np.float32) * noise
        mel = log_mel(wave, SAMPLE_RATE, N_FFT, HOP_LENGTH, N_MELS)
        if frames is not None:  # a one-sample wave still yields one frame; pad to the request
            mel = np.pad(mel, ((0, 0), (0, 0), (0, max(0, frames - mel.shape[-1]))), mode="edge")
            mel = mel[..., :frames]
        return np.ascontiguousarray(mel)
