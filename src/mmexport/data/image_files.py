"""Image files decoded for the image inputs: Pillow with its decompression-bomb limit enforced
(a warning below twice the limit is refused too), 8-bit modes only, channels as the spec asks."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from mmexport.core.errors import DataError

HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # Pillow modes beyond 8 bits


def decode_image(path: Path, channels: int, *, sample: str, field: str) -> Any:
    """The decoded Pillow image in mode RGB (3 channels) or L (1), or one DataError naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # Pillow only warns below twice its pixel limit: refuse too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            img.load()
            if img.mode in HIGH_DEPTH_MODES:
                raise DataError(
                    f"{path.name!r} is a {img.mode} (16-bit or float) image; only 8-bit images are read",
                    sample=sample,
                    field=field,
                    hint="save it as 8-bit RGB or grayscale, or give the array as .npy",
                )
            return _to_channels(img, channels, sample, field)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(
            f"{path.name!r} claims more pixels than Pillow reads safely (a decompression bomb?)",
            sample=sample,
            field=field,
            hint=f"at most {Image.MAX_IMAGE_PIXELS} pixels",
        ) from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise DataError(f"cannot read {path.name!r} as an image: {e}", sample=sample, field=field) from e


def _to_channels(img: Any, channels: int, sample: str, field: str) -> Any:
    """The image in mode RGB (3 channels) or L (1 channel), or a DataError naming both counts."""
    bands = len(img.getbands())
    if img.mode == "P":
        bands = 4 if "transparency" in img.info else 3
    if channels == 3 and bands in (1, 3):
        return img.convert("RGB")
    if channels == 1 and bands == 1:
        return img.convert("L") if img.mode in ("1", "P") else img
    raise DataError(
        f"expected {channels} channel{'s' if channels != 1 else ''}, got {bands} ({img.mode} image)",
        sample=sample,
        field=field,
        hint="save the image as RGB" if channels == 3 else "save the image as grayscale (L)",
    )


def size_in_range(h: int, w: int, h_range: tuple[int, int], w_range: tuple[int, int]) -> tuple[int, int]:
    """(h, w) if both are in range, else the in-range size nearest to it, aspect kept if possible."""
    if h_range[0] <= h <= h_range[1] and w_range[0] <= w <= w_range[1]:
        return h, w
    grow = max(h_range[0] / h, w_range[0] / w)
    shrink = min(h_range[1] / h, w_range[1] / w)
    factor = grow if grow > 1.0 else shrink
    new_h = min(max(round(h * factor), h_range[0]), h_range[1])
    new_w = min(max(round(w * factor), w_range[0]), w_range[1])
    return new_h, new_w
