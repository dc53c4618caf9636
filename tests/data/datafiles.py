"""Writers of tiny image, wav and sample-folder files for the data tests (imported by them)."""

from __future__ import annotations

import copy
import wave
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from mmexport.core.spec import ModelSpec
from mmexport.data.task_spec import FUSION_SPEC


def write_png(path: Path, pixels: np.ndarray, mode: str | None = None) -> Path:
    """Save uint8 pixels [H, W] or [H, W, C] as a PNG."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8), mode=mode).save(path)
    return path


def write_wav(path: Path, signal: np.ndarray, rate: int = 16000, width: int = 2) -> Path:
    """Save float samples in [-1, 1] ([n] mono or [n, channels]) as PCM of ``width`` bytes."""
    signal = signal.reshape(signal.shape[0], -1)
    if width == 1:
        data = np.clip(np.round(signal * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    elif width == 3:
        ints = np.clip(np.round(signal * 2**23), -(2**23), 2**23 - 1).astype("<i4")
        data = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        full = 2 ** (8 * width - 1)
        data = np.clip(np.round(signal * full), -full, full - 1).astype(f"<i{width}").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(signal.shape[1])
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(data)
    return path


def tone(seconds: float, hz: float = 440.0, rate: int = 16000) -> np.ndarray:
    """A sine tone of amplitude 0.5."""
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def random_pixels(height: int, width: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def write_sample(
    folder: Path,
    *,
    size: tuple[int, int] = (40, 48),
    text: str = "what colour is the object",
    seconds: float = 0.2,
    label: str | None = None,
    seed: int = 0,
) -> Path:
    """A fusion sample folder: image.png, tokens.txt, audio.wav and optionally label.txt."""
    write_png(folder / "image.png", random_pixels(*size, seed=seed))
    (folder / "tokens.txt").write_text(text)
    write_wav(folder / "audio.wav", tone(seconds, 300.0 + 100 * seed))
    if label is not None:
        (folder / "label.txt").write_text(label)
    return folder


def spec_with(changes: Callable[[dict[str, Any]], None] | None = None) -> ModelSpec:
    """The fusion spec, edited in its JSON form by ``changes``."""
    data = copy.deepcopy(FUSION_SPEC)
    if changes is not None:
        changes(data)
    return ModelSpec.from_dict(data)


HUGE = (10**6, 10**6)  # 3.6 TiB of float32: numpy's loader allocates a header's shape, then reads


def _lying_array(out: Any, shape: tuple[int, ...]) -> None:
    npy_format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": shape})
    out.write(b"\0" * 16)


def write_lying_npy(path: Path, shape: tuple[int, ...] = HUGE) -> Path:
    """An .npy whose header claims ``shape`` of float32 but that holds 16 bytes."""
    with open(path, "wb") as f:
        _lying_array(f, shape)
    return path


def write_lying_npz(path: Path, member: str, shape: tuple[int, ...] = HUGE) -> Path:
    """An .npz whose ``member`` claims ``shape`` of float32 but holds 16 bytes."""
    with zipfile.ZipFile(path, "w") as archive, archive.open(f"{member}.npy", "w") as out:
        _lying_array(out, shape)
    return path
