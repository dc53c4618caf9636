"""Log-mel spectrogram features written in numpy (no torch dependency)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

LOG_FLOOR = 1e-6
"""Floor added to mel power before the natural logarithm."""


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of the HTK mel scale."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular HTK mel filterbank from 0 Hz to Nyquist, float64 [n_mels, n_fft // 2 + 1]."""
    n_freqs = n_fft // 2 + 1
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_freqs)
    mel_points = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0), n_mels + 2)
    hz_points = _mel_to_hz(mel_points)
    lower, center, upper = hz_points[:-2, None], hz_points[1:-1, None], hz_points[2:, None]
    up = (fft_freqs[None, :] - lower) / (center - lower)
    down = (upper - fft_freqs[None, :]) / (upper - center)
    bank = np.maximum(0.0, np.minimum(up, down))
    bank.flags.writeable = False
    return bank


def num_frames(num_samples: int, hop_length: int = 160) -> int:
    """Number of frames `log_mel` produces for a wave of `num_samples` samples (centered STFT)."""
    return 1 + num_samples // hop_length


def log_mel(
    wave: np.ndarray,
    sample_rate: int = 16000,
    n_fft: int = 400,
    hop_length: int = 160,
    n_mels: int = 64,
) -> np.ndarray:
    """Natural-log mel power spectrogram of `wave` [..., samples] -> float32 [..., n_mels, frames].

    The STFT is centered (reflect padding of n_fft // 2 on both sides) with a periodic Hann
    window, so frames = 1 + samples // hop_length (16000 samples -> 101 frames). A float32 wave
    is processed in float32, anything else in float64.
    """
    x = np.asarray(wave)
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    x = x.astype(dtype, copy=False)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError("wave must have at least one sample on its last axis")
    pad = n_fft // 2
    widths = [(0, 0)] * (x.ndim - 1) + [(pad, pad)]
    x = np.pad(x, widths, mode="reflect" if x.shape[-1] > 1 else "constant")
    frames = 1 + (x.shape[-1] - n_fft) // hop_length
    starts = np.arange(frames) * hop_length
    index = starts[:, None] + np.arange(n_fft)[None, :]
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(dtype)
    segments = x[..., index] * window  # [..., frames, n_fft]
    spectrum = np.fft.rfft(segments, n=n_fft, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2  # [..., frames, freqs]
    bank = np.asarray(mel_filterbank(sample_rate, n_fft, n_mels), dtype=dtype)
    mel = np.matmul(power, bank.T)  # [..., frames, n_mels]
    return np.log(mel + LOG_FLOOR).swapaxes(-1, -2).astype(np.float32)
