"""TensorRT's native INT8 calibration cache (TensorRT 10 implicit INT8, ``trtexec --calib``).

Format: a header ``TRT-<version>-EntropyCalibration2`` (or ``-MinMaxCalibration``), then one line
per tensor ``<name>: <scale as the 8 hex digits of its float32 bit pattern>``, scale = amax / 127.
TensorRT refuses a cache whose header names another TensorRT version, so the version is part of
the file; ``rewrite_version`` retargets an existing cache.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from mmexport.core.errors import MmexportError

DEFAULT_TRT_VERSION = "10.3.0"  # JetPack 6, the most common TensorRT 10 target
_ALGORITHMS = {
    "entropy": "EntropyCalibration2",
    "minmax": "MinMaxCalibration",
    "percentile": "EntropyCalibration2",
}


_LINE_FORM = "'tensor: <8 hex digits>'"


def trt_version_number(version: str) -> int:
    """TensorRT's NV_TENSORRT_VERSION for ``version``: 10.3.0 -> 100300, 8.6.1 -> 8601."""
    parts = version.split(".")
    if not version or not all(p.isdigit() for p in parts):
        raise MmexportError(f"TensorRT version must look like 10.3.0, got {version!r}")
    major, minor, patch = (int(p) for p in [*parts, "0", "0"][:3])
    return major * 10000 + minor * 100 + patch if major >= 10 else major * 1000 + minor * 100 + patch


def header(method: str, trt_version: str = DEFAULT_TRT_VERSION) -> str:
    return f"TRT-{trt_version_number(trt_version)}-{_ALGORITHMS[method]}"


def scale_to_hex(scale: float) -> str:
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    return float(struct.unpack(">f", bytes.fromhex(text))[0])


def format_cache(scales: Mapping[str, float], method: str, trt_version: str = DEFAULT_TRT_VERSION) -> str:
    """The cache text for per-tensor ``scales`` (amax / 127)."""
    lines = [header(method, trt_version)]
    lines += [f"{name}: {scale_to_hex(scale)}" for name, scale in scales.items()]
    return "\n".join(lines) + "\n"


def parse_cache(text: str) -> tuple[str, dict[str, float]]:
    """(header, tensor -> scale) of a cache file's text."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("TRT-"):
        raise MmexportError("not a TensorRT calibration cache: the first line must start with 'TRT-'")
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        name, sep, value = line.rpartition(":")
        try:
            scales[name.strip()] = hex_to_scale(value.strip())
        except ValueError as e:
            raise MmexportError(
                f"calibration cache line {number} is not 'tensor: <8 hex digits>': {line!r}"
            ) from e
        if not sep:
            raise MmexportError(f"calibration cache line {number} is not 'tensor: <8 hex digits>': {line!r}")
    return lines[0], scales


def rewrite_version(text: str, trt_version: str) -> str:
    """The same cache with its header retargeted to ``trt_version``."""
    head, scales = parse_cache(text)
    algorithm = head.rsplit("-", 1)[-1]
    number = trt_version_number(trt_version)
    return (
        "\n".join([f"TRT-{number}-{algorithm}", *(f"{n}: {scale_to_hex(s)}" for n, s in scales.items())])
        + "\n"
    )
