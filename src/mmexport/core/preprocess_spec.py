"""The ``preprocess`` entry of a spec input: its kinds, their keys, and the checks of their values.

What each kind means for the data readers: docs/spec.md. numpy-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mmexport.core.errors import SpecError
from mmexport.core.spec_schema import INT_DTYPES, is_int, no_unknown_keys

# preprocess kind -> (required keys, optional keys). What each means: docs/spec.md.
PREPROCESS_KINDS: dict[str, tuple[set[str], set[str]]] = {
    "image": ({"mean", "std"}, {"scale", "channel_order"}),
    "log_mel": ({"sample_rate", "n_fft", "hop_length", "n_mels"}, {"duration_s"}),
    "tokens": (
        set(),
        {"vocab", "pad", "lowercase", "unk"},
    ),  # unk: the vocab word for unknown words  # pad: generated samples are padded at the end
}


MAX_SAMPLE_RATE = 1 << 20  # Hz: above any audio format's rate (768 kHz)
MAX_N_FFT = 1 << 16  # window and filterbank sizes stay in megabytes
MAX_HOP_LENGTH = 1 << 20
MAX_N_MELS = 1 << 16
MAX_WAVE_SAMPLES = 1 << 28  # duration_s * sample_rate: a 1 GiB float32 wave
CHANNEL_ORDERS = ("rgb", "bgr")
_INT_LIMITS = {"int64": 2**63, "int32": 2**31, "int8": 2**7, "uint8": 0}  # -low; high is below


def validate_preprocess(
    pre: Mapping[str, Any], *, dtype: str, shape: tuple[int | str, ...], where: str
) -> None:
    """Check an input's ``preprocess`` object against its kind and the input's dtype and shape:
    every field's type and range, so that a spec accepted at export cannot crash the readers."""
    kind = pre.get("kind")
    if not isinstance(kind, str) or kind not in PREPROCESS_KINDS:
        raise SpecError(
            f"preprocess kind {kind!r:.40} is not one of {', '.join(PREPROCESS_KINDS)}", where=where
        )
    required, optional = PREPROCESS_KINDS[kind]
    no_unknown_keys(pre, required | optional | {"kind"}, f"{where} preprocess")
    missing = sorted(required - set(pre))
    if missing:
        raise SpecError(f"preprocess {kind!r} needs {', '.join(missing)}", where=where)
    channels = shape[1] if len(shape) > 1 and isinstance(shape[1], int) else None
    if kind == "image":
        _check_image(pre, channels, where)
    elif kind == "log_mel":
        _check_log_mel(pre, channels, where)
    else:
        _check_tokens(pre, dtype, where)


def _is_number(value: Any) -> bool:
    """A finite int or float, and not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _bad(key: str, should: str, value: Any, where: str) -> SpecError:
    return SpecError(f"preprocess {key} must be {should}, got {value!r:.60}", where=where)


def _check_image(pre: Mapping[str, Any], channels: int | None, where: str) -> None:
    for key in ("mean", "std"):
        values = pre[key]
        ok = isinstance(values, list) and all(_is_number(v) for v in values)
        if not ok or (channels is not None and len(values) != channels):
            raise _bad(key, f"{channels or 'one per channel'} numbers", values, where)
    if any(v <= 0 for v in pre["std"]):
        raise SpecError(f"preprocess std must be > 0, got {pre['std']!r}", where=where)
    if "scale" in pre and not (_is_number(pre["scale"]) and pre["scale"] > 0):
        raise _bad("scale", "a number > 0", pre["scale"], where)
    if pre.get("channel_order", "rgb") not in CHANNEL_ORDERS:
        raise _bad("channel_order", '"rgb" or "bgr"', pre["channel_order"], where)


def _check_log_mel(pre: Mapping[str, Any], channels: int | None, where: str) -> None:
    bounds = {"sample_rate": MAX_SAMPLE_RATE, "n_fft": MAX_N_FFT, "hop_length": MAX_HOP_LENGTH}
    bounds["n_mels"] = MAX_N_MELS
    for key, high in bounds.items():
        if not is_int(pre[key]) or not 1 <= pre[key] <= high:
            raise _bad(key, f"an integer from 1 to {high}", pre[key], where)
    if channels is not None and pre["n_mels"] != channels:
        raise SpecError(
            f"preprocess n_mels is {pre['n_mels']} but axis 1 of the shape is {channels}", where=where
        )
    if "duration_s" in pre:
        seconds = pre["duration_s"]
        longest = MAX_WAVE_SAMPLES / pre["sample_rate"]
        if not (_is_number(seconds) and 0 < seconds <= longest):
            raise _bad("duration_s", f"a number of seconds > 0 and at most {longest:.0f}", seconds, where)


def _check_tokens(pre: Mapping[str, Any], dtype: str, where: str) -> None:
    vocab = pre.get("vocab")
    if vocab is not None and not (
        isinstance(vocab, list) and vocab and all(isinstance(v, str) for v in vocab)
    ):
        raise SpecError("preprocess vocab must be a non-empty list of strings", where=where)
    unk = pre.get("unk")
    if unk is not None and (vocab is None or not isinstance(unk, str) or unk not in vocab):
        raise SpecError(f"preprocess unk {unk!r:.60} must be a word of the vocab", where=where)
    if "lowercase" in pre and not isinstance(pre["lowercase"], bool):
        raise _bad("lowercase", "true or false", pre["lowercase"], where)
    if "pad" in pre:
        pad = pre["pad"]
        if not is_int(pad) or dtype not in INT_DTYPES:
            raise _bad("pad", "an integer id of an integer input", pad, where)
        low = -_INT_LIMITS[dtype]
        high = 255 if dtype == "uint8" else -low - 1
        if not low <= pad <= high:
            raise _bad("pad", f"an id that fits {dtype}", pad, where)
