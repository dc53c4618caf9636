"""One user file -> one sample's array for one spec input, as the input's ``preprocess`` says.

Files made the way ``mmexport.data.synthetic`` makes its data give the same arrays: images are
[0, 1] pixels normalized by mean and std, token files are words of the vocabulary, and wav
files become log-mel spectrograms through ``mmexport.data.audio.log_mel``. A ``.npy`` file is
taken as the array itself. Every array returned has the spec's shape without the batch axis.
numpy and Pillow only: the torch-free runtime uses this module.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.errors import DataError
from mmexport.core.spec import FLOAT_DTYPES, INT_DTYPES, InputSpec, ModelSpec
from mmexport.data.audio import log_mel
from mmexport.data.image_files import HIGH_DEPTH_MODES as HIGH_DEPTH_MODES
from mmexport.data.image_files import decode_image, size_in_range
from mmexport.data.wav_files import read_wav

DEFAULT_SCALE = 1.0 / 255.0
"""Pixel scale of ``kind: image`` when the spec gives none: 8-bit pixels to [0, 1]."""

MAX_TEXT_BYTES = 16 << 20
"""The most a token file may hold whatever the spec: far beyond any sequence a model reads."""
_BYTES_PER_TOKEN = 1 << 10  # a word with its spaces and punctuation, generously


def load_file(path: Path, inp: InputSpec, spec: ModelSpec, *, sample: str | None = None) -> np.ndarray:
    """The array of one sample for ``inp`` read from ``path``, without the batch axis.

    A ``.npy`` file is the array itself (checked against the spec); otherwise the input's
    ``preprocess`` kind decides: image file, ``.txt`` of words, or ``.wav``. ``sample`` names the
    sample in errors (default: the path).
    """
    who = sample if sample is not None else str(path)
    if not path.is_file():
        raise DataError(f"file {str(path)!r} does not exist", sample=who, field=inp.name)
    if path.suffix.lower() == ".npy":
        return _load_npy(path, inp, spec, who)
    kind = (inp.preprocess or {}).get("kind")
    if kind == "image":
        return load_image(path, inp, spec, sample=who)
    if kind == "tokens":
        return load_text(path, inp, spec, sample=who)
    if kind == "log_mel":
        return load_wav(path, inp, spec, sample=who)
    raise DataError(
        f"cannot read {path.name!r}: the spec gives this input no preprocess",
        sample=who,
        field=inp.name,
        hint="give the array as a .npy file, or add 'preprocess' to the input in the spec",
    )


def check_array(array: np.ndarray, inp: InputSpec, spec: ModelSpec, *, sample: str, batched: bool) -> None:
    """Raise DataError unless ``array`` fits ``inp``: dtype kind, rank, fixed dims, dim ranges.

    ``batched`` says whether axis 0 is the batch axis; without it the spec's axis 0 is skipped.
    """
    shape = inp.shape if batched else inp.shape[1:]
    if not _dtype_fits(array.dtype, inp.dtype):
        raise DataError(
            f"expected {_dtype_kind(inp.dtype)} values ({inp.dtype}), got {array.dtype}",
            sample=sample,
            field=inp.name,
        )
    if array.ndim != len(shape):
        raise DataError(
            f"expected rank {len(shape)} {_shape_text(shape)}, got shape {list(array.shape)}",
            sample=sample,
            field=inp.name,
            hint=None if batched else "one sample, without the batch axis",
        )
    offset = 0 if batched else 1
    for axis, (want, got) in enumerate(zip(shape, array.shape, strict=True)):
        low, high = dim_range(want, spec)
        if not low <= got <= high:
            what = f"dim {want!r}" if isinstance(want, str) else "size"
            expected = f"{low}" if low == high else f"in [{low}, {high}]"
            raise DataError(
                f"axis {axis + offset} ({what}) is {got}, expected {expected}", sample=sample, field=inp.name
            )


def dim_range(dim: int | str, spec: ModelSpec) -> tuple[int, int]:
    """The allowed [min, max] of one shape entry: a fixed size or a named dim's range."""
    if isinstance(dim, str):
        d = spec.dims[dim]
        return d.min, d.max
    return dim, dim


def cast_to(array: np.ndarray, inp: InputSpec, *, sample: str) -> np.ndarray:
    """``array`` in the input's exact dtype; integers that do not fit it are an error."""
    if array.dtype == np.dtype(inp.dtype):
        return array
    if inp.dtype in INT_DTYPES and array.size:
        info = np.iinfo(inp.dtype)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            raise DataError(f"values [{low}, {high}] do not fit {inp.dtype}", sample=sample, field=inp.name)
    return array.astype(inp.dtype)


# -- .npy ------------------------------------------------------------------------------------


def _load_npy(path: Path, inp: InputSpec, spec: ModelSpec, who: str) -> np.ndarray:
    from mmexport.data.npy_headers import npy_size_problem, spec_max_bytes  # before numpy allocates

    try:
        with open(path, "rb") as f:
            problem = npy_size_problem(f, path.stat().st_size, "the file", spec_max_bytes(spec, inp.name))
        array = None if problem else np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read {path.name!r} as a .npy array: {e}", sample=who, field=inp.name) from e
    if array is None:
        raise DataError(f"{str(path)!r}: {problem}", sample=who, field=inp.name)
    check_array(array, inp, spec, sample=who, batched=False)
    return cast_to(array, inp, sample=who)


# -- images -----------------------------------------------------------------------------------


def load_image(path: Path, inp: InputSpec, spec: ModelSpec, *, sample: str) -> np.ndarray:
    """An image file as float32 [C, H, W]: RGB (or grayscale), scaled, normalized by mean and std.

    Grayscale and palette images become RGB for 3-channel inputs (as torchvision's loader does);
    images with alpha or CMYK are refused rather than guessed at. ``channel_order: "bgr"``
    reverses the channels before mean and std apply. A size outside the spec's height/width
    ranges is resized (bilinear) to the size in range nearest to it, keeping the aspect ratio
    where the ranges allow; a size in range is kept as it is.
    """
    from PIL import Image

    if len(inp.shape) != 4 or not isinstance(inp.shape[1], int):
        raise DataError(
            f"image preprocess needs a shape [batch, C, H, W] with a fixed C, the spec has "
            f"{_shape_text(inp.shape)}",
            sample=sample,
            field=inp.name,
        )
    image = decode_image(path, inp.shape[1], sample=sample, field=inp.name)
    size = size_in_range(
        image.height, image.width, dim_range(inp.shape[2], spec), dim_range(inp.shape[3], spec)
    )
    if size != (image.height, image.width):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return normalize_image(np.asarray(image).reshape(image.height, image.width, -1), inp, sample=sample)


def normalize_image(pixels: np.ndarray, inp: InputSpec, *, sample: str | None = None) -> np.ndarray:
    """HxWxC pixels (e.g. a decoded uint8 RGB frame) as the input's normalized [C, H, W] array.

    The arithmetic of ``load_image`` after decoding: channel order, ``scale``, ``mean``, ``std``.
    Nothing is resized or checked against the spec's ranges here (``check_array`` does that). Values
    the input's dtype cannot hold (a ``scale`` too large for float16) are a DataError, not inf.
    """
    pre = inp.preprocess or {}
    chw = np.asarray(pixels, dtype=np.float32).transpose(2, 0, 1)
    if pre.get("channel_order", "rgb") == "bgr":
        chw = chw[::-1]
    with np.errstate(over="ignore", invalid="ignore"):  # checked below, by name
        chw = chw * np.float32(pre.get("scale", DEFAULT_SCALE))
        mean = np.asarray(pre["mean"], dtype=np.float32)[:, None, None]
        std = np.asarray(pre["std"], dtype=np.float32)[:, None, None]
        values = (chw - mean) / std
    _check_representable(values, inp, sample)
    return np.ascontiguousarray(values, dtype=inp.dtype)


def _check_representable(values: np.ndarray, inp: InputSpec, sample: str | None) -> None:
    """Normalized pixels must be finite in the input's dtype (float16 ends at 65504)."""
    if values.size == 0 or inp.dtype == "bool":
        return
    finite = bool(np.isfinite(values).all())
    low, high = (float(values.min()), float(values.max())) if finite else (-math.inf, math.inf)
    info = np.finfo(inp.dtype) if inp.dtype in FLOAT_DTYPES else np.iinfo(inp.dtype)
    if low < float(info.min) or high > float(info.max):
        raise DataError(
            f"normalized pixels reach {low:.3g}..{high:.3g}, beyond what {inp.dtype} holds "
            f"({float(info.min):.3g}..{float(info.max):.3g})",
            sample=sample,
            field=inp.name,
            hint="check the input's preprocess scale, mean and std",
        )


# -- text ---------------------------------------------------------------------------------------


def load_text(path: Path, inp: InputSpec, spec: ModelSpec, *, sample: str) -> np.ndarray:
    """A text file as token ids [S]: see ``text_to_tokens``."""
    _require_rank(inp, 2, "tokens preprocess needs a shape [batch, seq]", sample)
    limit = min(MAX_TEXT_BYTES, _BYTES_PER_TOKEN * (dim_range(inp.shape[1], spec)[1] + 64))
    try:
        size = path.stat().st_size
        if size <= limit:
            with path.open("rb") as f:
                raw = f.read(limit + 1)  # bounded: the file may have grown since
            size = len(raw)
        if size > limit:
            raise DataError(
                f"{path.name!r} is {size} bytes, more than a text of this input's length "
                f"can be ({limit} bytes)",
                sample=sample,
                field=inp.name,
            )
        text = raw.decode("utf-8-sig")  # a byte-order mark (Windows editors write one) is no word
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path.name!r} as UTF-8 text: {e}", sample=sample, field=inp.name) from e
    return text_to_tokens(text, inp, spec, sample=sample, source=repr(path.name))


def text_to_tokens(
    text: str, inp: InputSpec, spec: ModelSpec, *, sample: str, source: str = "the text"
) -> np.ndarray:
    """Text as token ids [S]: words (lowercased unless ``lowercase: false``) through ``vocab``.

    Without a vocab the text holds integer ids. Shorter than the dim's min: padded at the end with
    ``pad``; longer than its max: an error (cutting a question changes its meaning). ``source``
    names the text in errors (a file name, or "the command").
    """
    pre = inp.preprocess or {}
    _require_rank(inp, 2, "tokens preprocess needs a shape [batch, seq]", sample)
    text = text.removeprefix("\ufeff")
    words = (text.lower() if pre.get("lowercase", True) else text).split()
    if pre.get("vocab") is not None:  # "what colour is the object?" -> ... "object"
        words = [w.strip(string.punctuation) for w in words]
        words = [w for w in words if w]
    if not words:
        raise DataError(f"{source} holds no words", sample=sample, field=inp.name)
    ids = _token_ids(words, pre.get("vocab"), source, sample, inp.name, pre.get("unk"))
    _check_ids(ids, inp, source, sample)
    info = np.iinfo(inp.dtype) if inp.dtype in INT_DTYPES else None
    if info is not None and not (info.min <= min(ids) and max(ids) <= info.max):
        raise DataError(
            f"{source}: token ids [{min(ids)}, {max(ids)}] do not fit {inp.dtype}",
            sample=sample,
            field=inp.name,
        )
    low, high = dim_range(inp.shape[1], spec)
    if len(ids) > high:
        raise DataError(
            f"{source} has {len(ids)} tokens, expected at most {high}", sample=sample, field=inp.name
        )
    if len(ids) < low:
        if "pad" not in pre:
            raise DataError(
                f"{source} has {len(ids)} tokens, expected at least {low}",
                sample=sample,
                field=inp.name,
                hint="give a 'pad' id in the input's preprocess to pad short texts",
            )
        ids += [int(pre["pad"])] * (low - len(ids))
    return np.asarray(ids, dtype=inp.dtype)


def _check_ids(ids: list[int], inp: InputSpec, source: str, sample: str) -> None:
    """Token ids index an embedding table: a negative one would wrap around (ONNX Gather takes
    -1 as the last row) and one past the spec's range would read past it, silently."""
    low, high = inp.range if inp.range is not None else (0, None)
    pad = (inp.preprocess or {}).get("pad")
    bad = [i for i in ids if i != pad and (i < low or (high is not None and i >= high))]
    if bad:
        allowed = f"[{low}, {high})" if high is not None else f">= {low}"
        raise DataError(
            f"{source}: token id {bad[0]} is outside {allowed}"
            + (" (the spec's range)" if inp.range is not None else " (ids index the vocabulary)"),
            sample=sample,
            field=inp.name,
        )


def _require_rank(inp: InputSpec, rank: int, message: str, sample: str) -> None:
    if len(inp.shape) != rank:
        raise DataError(f"{message}, the spec has {_shape_text(inp.shape)}", sample=sample, field=inp.name)


def _token_ids(
    words: list[str], vocab: list[str] | None, source: str, sample: str, field: str, unk: str | None = None
) -> list[int]:
    if vocab is None:
        ids = []
        for word in words:
            try:
                ids.append(int(word) if len(word) <= 21 else int("x"))  # 21: longer is no int64
            except ValueError:
                raise DataError(
                    f"{source}: {_quoted(word)} is not a token id and the spec gives no vocab",
                    sample=sample,
                    field=field,
                ) from None
        return ids
    index = {word: i for i, word in enumerate(vocab)}
    if unk is not None:  # the spec names a token for words outside the vocab
        return [index.get(word, index[unk]) for word in words]
    for word in words:
        if word not in index:
            raise DataError(
                f"{source}: word {_quoted(word)} is not in the vocab ({len(vocab)} words)",
                sample=sample,
                field=field,
                hint='add "unk": "<token>" to the input\'s preprocess to map unknown words to it',
            )
    return [index[word] for word in words]


def _quoted(word: str, most: int = 40) -> str:
    """``word`` as an error quotes it: its repr, cut to ``most`` characters (a text without spaces
    is one word, and may be megabytes long)."""
    text = repr(word)
    return text if len(text) <= most else f"{text[: most - 4]}...' ({len(word)} characters)"


# -- audio -------------------------------------------------------------------------------------


def load_wav(path: Path, inp: InputSpec, spec: ModelSpec, *, sample: str) -> np.ndarray:
    """A PCM .wav (8/16/24/32-bit, channels averaged to mono) as a log-mel: see ``wave_to_log_mel``."""
    _require_rank(inp, 3, "log_mel preprocess needs a shape [batch, n_mels, frames]", sample)
    pre: Mapping[str, Any] = inp.preprocess or {}
    hop, high = pre["hop_length"], dim_range(inp.shape[-1], spec)[1]
    keep = max(1, round(float(pre["duration_s"]) * pre["sample_rate"])) if "duration_s" in pre else None
    # frames = 1 + samples // hop: more samples than this give more frames than the dim's max
    signal, rate = read_wav(path, sample=sample, field=inp.name, max_frames=high * hop - 1, keep=keep)
    return wave_to_log_mel(signal, rate, inp, spec, sample=sample, source=repr(path.name))


def wave_to_log_mel(
    signal: np.ndarray, rate: int, inp: InputSpec, spec: ModelSpec, *, sample: str, source: str = "the audio"
) -> np.ndarray:
    """A mono float wave as the input's log-mel [n_mels, frames].

    ``rate`` must be the spec's ``sample_rate`` (resampling would change the features). With
    ``duration_s`` the wave is cut or zero-padded to that length first; frames outside the dim's
    range are an error, not cropped.
    """
    _require_rank(inp, 3, "log_mel preprocess needs a shape [batch, n_mels, frames]", sample)
    pre: Mapping[str, Any] = inp.preprocess or {}
    if rate != pre["sample_rate"]:
        raise DataError(
            f"{source} is sampled at {rate} Hz, expected {pre['sample_rate']} Hz",
            sample=sample,
            field=inp.name,
            hint="resample it",
        )
    signal = np.asarray(signal, dtype=np.float32)
    if "duration_s" in pre:
        length = max(1, round(float(pre["duration_s"]) * rate))
        signal = np.pad(signal[:length], (0, max(0, length - signal.shape[0])))
    mel = log_mel(signal, rate, pre["n_fft"], pre["hop_length"], pre["n_mels"])
    low, high = dim_range(inp.shape[-1], spec)
    if not low <= mel.shape[-1] <= high:
        raise DataError(
            f"{source} ({signal.shape[0] / rate:.3f} s) gives {mel.shape[-1]} frames, "
            f"expected {low} to {high}",
            sample=sample,
            field=inp.name,
            hint=f"frames = 1 + samples // {pre['hop_length']}",
        )
    check_array(mel, inp, spec, sample=sample, batched=False)
    return mel.astype(inp.dtype, copy=False)


# -- helpers ----------------------------------------------------------------------------------


def _dtype_kind(dtype: str) -> str:
    if dtype in FLOAT_DTYPES:
        return "float"
    return "integer" if dtype in INT_DTYPES else "bool"


def _dtype_fits(actual: np.dtype[Any], expected: str) -> bool:
    """Same kind is enough (ints for int inputs, floats for float inputs); cast_to makes it exact."""
    if expected in FLOAT_DTYPES:
        return actual.kind == "f"
    if expected in INT_DTYPES:
        return actual.kind in "iu"
    return actual.kind == "b"


def _shape_text(shape: tuple[int | str, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"
