"""Spec entries of the synthetic task's inputs, shared by the built-in models."""

from __future__ import annotations

import copy
from typing import Any

from mmexport.data.synthetic import (
    HOP_LENGTH,
    IMAGE_LABELS,
    IMAGE_MEAN,
    IMAGE_STD,
    LABELS,
    N_FFT,
    N_MELS,
    PAD_ID,
    SAMPLE_RATE,
    VOCAB,
)

IMAGE_INPUT: dict[str, Any] = {
    "name": "image",
    "modality": "image",
    "dtype": "float32",
    "shape": ["batch", 3, "height", "width"],
    "preprocess": {"kind": "image", "mean": list(IMAGE_MEAN), "std": list(IMAGE_STD)},
}
TOKENS_INPUT: dict[str, Any] = {
    "name": "tokens",
    "modality": "text",
    "dtype": "int64",
    "shape": ["batch", "seq"],
    "range": [1, len(VOCAB)],
    "preprocess": {"kind": "tokens", "vocab": list(VOCAB), "pad": PAD_ID},
}
AUDIO_INPUT: dict[str, Any] = {
    "name": "audio",
    "modality": "audio",
    "dtype": "float32",
    "shape": ["batch", N_MELS, "frames"],
    "preprocess": {
        "kind": "log_mel",
        "sample_rate": SAMPLE_RATE,
        "n_fft": N_FFT,
        "hop_length": HOP_LENGTH,
        "n_mels": N_MELS,
    },
}
DIMS: dict[str, dict[str, int]] = {
    "batch": {"min": 1, "opt": 4, "max": 32},
    "height": {"min": 32, "opt": 128, "max": 512},
    "width": {"min": 32, "opt": 128, "max": 512},
    "seq": {"min": 1, "opt": 16, "max": 128},
    "frames": {"min": 16, "opt": 100, "max": 1000},
}


def task_spec(inputs: list[dict[str, Any]], output: str, labels: list[str]) -> dict[str, Any]:
    """A spec in JSON form over ``inputs``, with the dims they use and one labelled output."""
    used = {d for entry in inputs for d in entry["shape"] if isinstance(d, str)}
    return {
        "inputs": copy.deepcopy(inputs),
        "outputs": [{"name": output, "labels": list(labels)}],
        "dims": {name: dict(value) for name, value in DIMS.items() if name in used},
    }


SEED_SPEC = task_spec([IMAGE_INPUT, TOKENS_INPUT], "probs", IMAGE_LABELS)
FUSION_SPEC = task_spec([IMAGE_INPUT, TOKENS_INPUT, AUDIO_INPUT], "logits", LABELS)

# The built-in models' specs by model name, the default first (as the model registry lists them).
TASK_SPECS = {"fusion": FUSION_SPEC, "seed": SEED_SPEC}
