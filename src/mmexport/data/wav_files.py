"""PCM ``.wav`` samples for the log-mel inputs, read with the frame count checked first.

The header's frame count (bounded by the file's size, since streamed recordings leave it at its
maximum) is compared with what the caller can use before any sample is read, so an hour-long
file costs no memory; a file cut inside its last frame keeps its whole frames.
"""

from __future__ import annotations

import struct
import wave
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.errors import DataError

_PCM_SCALE = {1: 128.0, 2: 32768.0, 3: 8388608.0, 4: 2147483648.0}  # sample width -> full scale
_PCM, _EXTENSIBLE = 0x0001, 0xFFFE
_PCM_SUBFORMAT = bytes.fromhex("0100000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_PCM


class _WaveRead(wave.Wave_read):
    """``wave``'s reader, also taking WAVE_FORMAT_EXTENSIBLE with the PCM subformat (what most
    recorders write for 24-bit and multi-channel audio), which Python reads only from 3.12."""

    def _read_fmt_chunk(self, chunk: Any) -> None:
        head = chunk.read(16)
        if len(head) < 16:
            raise EOFError
        tag, channels, rate, _, _, bits = struct.unpack("<HHLLHH", head)
        if tag == _EXTENSIBLE:
            extension = chunk.read(24)  # size, valid bits, channel mask, subformat GUID
            if len(extension) < 24:
                raise EOFError
            if extension[8:24] != _PCM_SUBFORMAT:
                raise wave.Error("WAVE_FORMAT_EXTENSIBLE with a subformat that is not PCM (e.g. float)")
        elif tag != _PCM:
            raise wave.Error(f"format tag {tag:#06x} is not PCM (1) or WAVE_FORMAT_EXTENSIBLE PCM")
        if not channels:
            raise wave.Error("bad # of channels")
        self._nchannels, self._framerate, self._sampwidth = channels, rate, (bits + 7) // 8
        if not self._sampwidth:
            raise wave.Error("bad sample width")
        self._framesize = channels * self._sampwidth
        self._comptype, self._compname = "NONE", "not compressed"


def read_wav(
    path: Path, *, sample: str, field: str, max_frames: int | None = None, keep: int | None = None
) -> tuple[np.ndarray, int]:
    """Samples of a PCM wav file as float32 mono in [-1, 1), and its sample rate.

    ``max_frames``: more frames than this is a DataError, raised before reading any; ``keep``:
    read at most this many frames (the rest is not needed)."""
    try:
        with _WaveRead(str(path)) as f:
            width, channels, rate = f.getsampwidth(), f.getnchannels(), f.getframerate()
            frames = min(f.getnframes(), path.stat().st_size // max(1, width * channels))
            if max_frames is not None and frames > max_frames and (keep is None or keep > max_frames):
                raise DataError(
                    f"{path.name!r} holds {frames} frames ({frames / max(rate, 1):.1f} s), "
                    f"more than the {max_frames} the input's dims allow",
                    sample=sample,
                    field=field,
                )
            raw = f.readframes(frames if keep is None else min(frames, keep))
    except (wave.Error, EOFError, OSError, RuntimeError) as e:  # RuntimeError: a chunk size past the end
        raise DataError(
            f"cannot read {path.name!r} as a PCM wav file: {e}", sample=sample, field=field
        ) from e
    if width not in _PCM_SCALE:
        raise DataError(
            f"{path.name!r} has {8 * width}-bit samples, expected 8, 16, 24 or 32", sample=sample, field=field
        )
    raw = raw[: len(raw) - len(raw) % (width * channels)]  # a file cut inside a frame: whole frames only
    values = _pcm_values(raw, width)
    if values.size == 0:
        raise DataError(f"{path.name!r} holds no samples", sample=sample, field=field)
    mono = values.reshape(-1, channels).mean(axis=1) / np.float32(_PCM_SCALE[width])
    return mono.astype(np.float32), rate


def _pcm_values(raw: bytes, width: int) -> np.ndarray:
    """Little-endian PCM of ``width`` bytes as float32 sample values (not yet scaled)."""
    if width == 1:
        return np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0
    if width == 3:  # little-endian 24-bit: sign-extend through the top byte of an int32
        triples = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        padded = np.zeros((triples.shape[0], 4), dtype=np.uint8)
        padded[:, 1:] = triples
        return (padded.view("<i4").reshape(-1) >> 8).astype(np.float32)
    return np.frombuffer(raw, dtype=f"<i{width}").astype(np.float32)
