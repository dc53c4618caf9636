"""The ``preprocess`` entry of a spec input: its kinds, their keys, and the checks of their values.

What each kind means for the data readers: docs/spec.md. numpy-free.
"""

from __future__ import annotations

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


def validate_preprocess(
    pre: Mapping[str, Any], *, dtype: str, shape: tuple[int | str, ...], where: str
) -> None:
    """Check an input's ``preprocess`` object against its kind and the input's dtype and shape."""
    kind = pre.get("kind")
    if kind not in PREPROCESS_KINDS:
        raise SpecError(f"preprocess kind {kind!r} is not one of {', '.join(PREPROCESS_KINDS)}", where=where)
    required, optional = PREPROCESS_KINDS[kind]
    no_unknown_keys(pre, required | optional | {"kind"}, f"{where} preprocess")
    missing = sorted(required - set(pre))
    if missing:
        raise SpecError(f"preprocess {kind!r} needs {', '.join(missing)}", where=where)
    channels = shape[1] if len(shape) > 1 and isinstance(shape[1], int) else None
    if kind == "image":
        _check_image(pre, channels, where)
    elif kind == "log_mel":
        _check_log_mel(pre, required, channels, where)
    else:
        _check_tokens(pre, dtype, where)


def _check_image(pre: Mapping[str, Any], channels: int | None, where: str) -> None:
    for key in ("mean", "std"):
        values = pre[key]
        ok = isinstance(values, list) and all(isinstance(v, (int, float)) for v in values)
        if not ok or (channels is not None and len(values) != channels):
            raise SpecError(
                f"preprocess {key} must be {channels or 'one per channel'} numbers, got {values!r}",
                where=where,
            )
    if any(v <= 0 for v in pre["std"]):
        raise SpecError(f"preprocess std must be > 0, got {pre['std']!r}", where=where)


def _check_log_mel(pre: Mapping[str, Any], required: set[str], channels: int | None, where: str) -> None:
    for key in sorted(required):
        if not is_int(pre[key]) or pre[key] < 1:
            raise SpecError(f"preprocess {key} must be an integer >= 1, got {pre[key]!r}", where=where)
    if channels is not None and pre["n_mels"] != channels:
        raise SpecError(
            f"preprocess n_mels is {pre['n_mels']} but axis 1 of the shape is {channels}", where=where
        )


def _check_tokens(pre: Mapping[str, Any], dtype: str, where: str) -> None:
    vocab = pre.get("vocab")
    if vocab is not None and not (isinstance(vocab, list) and all(isinstance(v, str) for v in vocab)):
        raise SpecError("preprocess vocab must be a list of strings", where=where)
    unk = pre.get("unk")
    if unk is not None and (vocab is None or unk not in vocab):
        raise SpecError(f"preprocess unk {unk!r} must be a word of the vocab", where=where)
    if "pad" in pre and (not is_int(pre["pad"]) or dtype not in INT_DTYPES):
        raise SpecError(
            f"preprocess pad must be an integer id of an integer input, got {pre['pad']!r}", where=where
        )
