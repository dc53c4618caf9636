"""Implicit INT8 on TensorRT 10 from the native calibration cache that ``mmexport calibrate`` wrote.

TensorRT 10 takes per-tensor scales for an FP32 network through an ``IInt8Calibrator``; ours only
hands over the cache (``read_calibration_cache``) and has no data (``get_batch`` returns None), so
TensorRT never runs a calibration pass of its own. The base class must match the algorithm in the
cache header. TensorRT 11 removed calibrators: there INT8 comes from a Q/DQ ONNX only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from mmexport.core.errors import ArtifactError, MmexportError
from mmexport.precision import calib_cache
from mmexport.runtime.backends.tensorrt.api import version_of

# cache header suffix -> the TensorRT calibrator base class that writes and reads it
CALIBRATOR_BASES = {
    "EntropyCalibration2": "IInt8EntropyCalibrator2",
    "MinMaxCalibration": "IInt8MinMaxCalibrator",
}
# A scale written without its leading zeros (TAO writes ``hex(bits)[2:]``): 1-7 hex digits.
_SHORT_HEX = re.compile(r"^(.*:\s*)([0-9a-fA-F]{1,7})\s*$")


@dataclass(frozen=True)
class CalibrationCache:
    path: Path
    data: bytes  # the cache as TensorRT will read it (header retargeted if needed)
    algorithm: str  # a key of CALIBRATOR_BASES
    tensors: int
    notes: tuple[str, ...] = ()


def default_cache_paths(onnx_path: Path) -> list[Path]:
    """Where the cache of ``model.onnx`` is looked for: ``model.calib``, then ``model.int8.calib``
    (what ``mmexport calibrate model.onnx`` writes beside ``model.int8.onnx``)."""
    return [onnx_path.with_suffix(".calib"), onnx_path.with_name(f"{onnx_path.stem}.int8.calib")]


def find_cache(onnx_path: Path, given: Path | None) -> Path:
    if given is not None:
        if not given.is_file():
            raise ArtifactError(str(given), "calibration cache does not exist")
        return given
    for candidate in default_cache_paths(onnx_path):
        if candidate.is_file():
            return candidate
    names = " or ".join(p.name for p in default_cache_paths(onnx_path))
    raise ArtifactError(
        str(onnx_path),
        f"implicit INT8 needs a calibration cache beside it ({names})",
        hint=f"run `mmexport calibrate {onnx_path.name}` or pass --int8-calib FILE",
    )


def load_cache(path: Path, trt_version: str) -> CalibrationCache:
    """Read and check a native cache; retarget its header to the running TensorRT version."""
    try:
        text = pad_short_scales(path.read_text(encoding="ascii"))
        header, scales = calib_cache.parse_cache(text)
    except (OSError, UnicodeDecodeError, MmexportError) as e:
        raise ArtifactError(str(path), f"is not a TensorRT calibration cache: {e}") from e
    algorithm = header.rsplit("-", 1)[-1]
    if algorithm not in CALIBRATOR_BASES:
        raise ArtifactError(
            str(path), f"calibration algorithm {algorithm!r} is not one of {', '.join(CALIBRATOR_BASES)}"
        )
    notes: list[str] = []
    wanted = f"TRT-{calib_cache.trt_version_number(trt_version)}-{algorithm}"
    if header != wanted:
        text = calib_cache.rewrite_version(text, trt_version)
        notes.append(f"calibration cache header {header} retargeted to {wanted} (TensorRT {trt_version})")
    return CalibrationCache(path, text.encode("ascii"), algorithm, len(scales), tuple(notes))


def pad_short_scales(text: str) -> str:
    """Left-pad scales written with fewer than 8 hex digits to 8 (the float32 bit pattern's leading
    zeros); the header line and well-formed lines are kept as they are."""
    lines = text.splitlines()
    padded = [lines[0], *(_SHORT_HEX.sub(lambda m: m.group(1) + m.group(2).zfill(8), x) for x in lines[1:])]
    return "\n".join(padded) + ("\n" if text.endswith("\n") else "") if lines else text


def make_calibrator(trt: ModuleType, cache: CalibrationCache) -> Any:
    """An instance of a subclass of the cache's calibrator base that only reads ``cache``."""
    base_name = CALIBRATOR_BASES[cache.algorithm]
    base = getattr(trt, base_name, None)
    if base is None:
        version = ".".join(map(str, version_of(trt)))
        raise MmexportError(f"TensorRT {version} has no {base_name}: implicit INT8 needs TensorRT 10")

    class CacheOnlyCalibrator(base):  # type: ignore[misc, valid-type]
        """Hands TensorRT the cache; has no data, so TensorRT cannot fall back to calibrating."""

        def __init__(self) -> None:
            base.__init__(self)  # type: ignore[misc]  # pybind11 trampolines need the base initialised
            self.cache = cache.data

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> None:
            return None

        def read_calibration_cache(self) -> bytes:
            return self.cache

        def write_calibration_cache(self, cache: Any) -> None:
            return None

    return CacheOnlyCalibrator()
