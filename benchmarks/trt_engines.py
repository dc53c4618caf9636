"""TensorRT FP16 and INT8 engines of the default model against onnxruntime, one table.

On a machine with a GPU and TensorRT: export the default model, make its FP16 and INT8 (Q/DQ)
ONNX, build an engine of each with ``mmexport build`` (sharing one timing cache; on TensorRT 10
also an implicit-INT8 engine from the native calibration cache), then ``mmexport bench`` the ONNX
files on onnxruntime's CUDA provider and the engines on the native TensorRT backend, interleaved,
printing bench's table. Without TensorRT it makes the ONNX files, says so, and exits 0.

    python benchmarks/trt_engines.py --folder /tmp/trt-bench --target gpu
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mmexport", *args]
    print("$ mmexport " + shlex.join(args), flush=True)
    return subprocess.run(command, check=False, text=True)


def must(*args: str) -> None:
    if run(*args).returncode != 0:
        raise SystemExit(f"failed: mmexport {shlex.join(args)}")


def make_onnx(folder: Path, samples: int, trt_version: str | None) -> dict[str, Path]:
    fp32 = folder / "model.onnx"
    must("to-onnx", "-o", str(fp32), "-q")
    must("fp16", str(fp32), "--eval-samples", "0", "-q")
    calib = [
        "calibrate",
        str(fp32),
        "--samples",
        str(samples),
        "--eval-samples",
        "0",
        "--no-sensitivity",
        "-q",
    ]
    if trt_version:
        calib += ["--trt-version", trt_version]  # the .calib header must name this TensorRT
    must(*calib)
    return {"fp32": fp32, "fp16": folder / "model.fp16.onnx", "int8": folder / "model.int8.onnx"}


def build_engines(onnx: dict[str, Path], target: str, generation: int) -> list[Path]:
    cache = onnx["fp32"].with_name("timing.cache")
    jobs = [
        (onnx["fp16"], onnx["fp32"].with_name("model.fp16.engine"), []),
        (onnx["int8"], onnx["fp32"].with_name("model.int8.engine"), []),
    ]
    if generation == 10:  # implicit INT8 from the calibration cache: TensorRT 10 only
        implicit = ["--precision", "int8", "--int8-calib", str(onnx["fp32"].with_name("model.int8.calib"))]
        jobs.append((onnx["fp32"], onnx["fp32"].with_name("model.int8-implicit.engine"), implicit))
    engines = []
    for source, engine, extra in jobs:
        args = ["build", str(source), "--target", target, "-o", str(engine), "--timing-cache", str(cache)]
        must(*args, *extra)
        engines.append(engine)
    return engines


def tensorrt_backend_exists() -> bool:
    return importlib.util.find_spec("mmexport.runtime.backends.tensorrt") is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None, help="Where to write (default: a temp folder).")
    parser.add_argument("--target", default="gpu", help="mmexport build --target")
    parser.add_argument("--samples", type=int, default=256, help="Calibration samples.")
    parser.add_argument("--duration", default="3", help="mmexport bench --duration (seconds per artifact).")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="trt-engines-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import tensorrt as trt
    except ImportError:
        trt = None
    version = str(trt.__version__) if trt is not None else None
    onnx = make_onnx(folder, args.samples, version)
    if trt is None:
        made = ", ".join(p.name for p in onnx.values())
        print(f"TensorRT is not installed: made {made} in {folder}; no engines to build or benchmark")
        return 0
    engines = build_engines(onnx, args.target, int(version.split(".")[0]) if version else 0)
    bench = ["bench", "--device", "cuda", "--duration", args.duration]
    onnx_files = [str(p) for p in onnx.values()]
    if tensorrt_backend_exists() and run(*bench, *onnx_files, *map(str, engines)).returncode == 0:
        return 0
    print("benchmarking the ONNX files only (engines: no native TensorRT backend here, or it failed)")
    return run(*bench, "--provider", "cuda", *onnx_files).returncode


if __name__ == "__main__":
    raise SystemExit(main())
