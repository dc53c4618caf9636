"""Bundle targets as data: a device and its software stack, where ``build.sh`` builds the engines.

A bundle target names the ``mmexport build`` target (``mmexport.trt.targets``: workspace cap, DLA),
the TensorRT generation whose trtexec flags ``build.sh`` writes, and what the device's Python
environment needs. Facts come from TENSORRT.md (JetPack 6: TensorRT 10.3, CUDA 12.6, Python 3.10,
TensorRT from apt) and ``mmexport.trt.targets``; every value listed in ``unverified`` comes from
release notes or public projects, not from a device.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmexport.core.errors import MmexportError
from mmexport.trt.targets import TARGETS, Target

JETSON_VENV = "python3 -m venv --system-site-packages .venv"
SERVER_VENV = "python3 -m venv .venv"
JETPACK_TENSORRT = "JetPack's apt packages, system dist-packages"

_MMEXPORT_IMPORTS = (  # the lower bounds of mmexport's own dependencies (pyproject.toml)
    "# What `mmexport build` and the runtime import (install mmexport itself with --no-deps).",
    "click>=8.1",
    "onnx>=1.16",
)

_JP6_REQUIREMENTS = (
    "# JetPack 6's CUDA 12.6 Python packages are built against NumPy 1.x (jetson-containers pins",
    "# 'numpy<2' up to CUDA 12.6); NumPy 2 breaks modules compiled for 1.x.",
    "numpy>=1.24,<2",
    "# cuda-python 13 needs a CUDA 13 driver; JetPack 6 has CUDA 12.6. mmexport imports",
    "# cuda.bindings.runtime, which cuda-python has since 12.6.1 (12.6.0 has cuda.cudart only).",
    "cuda-python>=12.6.1,<13",
    *_MMEXPORT_IMPORTS,
    "# tensorrt: NOT from pip. JetPack installs it with apt into the system dist-packages; the venv",
    "# sees it because it was created with --system-site-packages (`pip install tensorrt` fails here).",
    "# onnxruntime-gpu (only to run the ONNX files on the GPU): PyPI has no aarch64 GPU wheel",
    "# (onnxruntime#20503). NVIDIA's Jetson AI Lab index publishes JetPack 6 builds; unverified here,",
    "# the index's address has moved before (.dev -> .io). If you need it, uncomment:",
    "# --extra-index-url https://pypi.jetson-ai-lab.io/jp6/cu126",
    "# onnxruntime-gpu",
)


@dataclass(frozen=True)
class BundleTarget:
    """A device with its software stack, as ``mmexport bundle --target`` names it."""

    name: str
    description: str
    trt_target: str  # key of mmexport.trt.targets.TARGETS, passed to `mmexport build --target`
    generation: int  # TensorRT major version: selects the trtexec flags in build.sh
    tensorrt: str  # TensorRT release of the stack
    cuda: str
    python: str
    tensorrt_install: str  # where TensorRT comes from on the device
    venv: str  # the command that creates the Python environment
    requirements: tuple[str, ...]  # requirements.txt lines (comments included)
    notes: tuple[str, ...] = ()  # install and benchmark notes for README.txt
    unverified: tuple[str, ...] = ()  # fields (and facts) not checked against a device or TENSORRT.md

    @property
    def engine_target(self) -> Target:
        return TARGETS[self.trt_target]

    @property
    def is_jetson(self) -> bool:
        return self.engine_target.is_jetson

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "trt_target": self.trt_target,
            "tensorrt_generation": self.generation,
            "tensorrt": self.tensorrt,
            "cuda": self.cuda,
            "python": self.python,
            "tensorrt_install": self.tensorrt_install,
            "workspace_bytes": self.engine_target.workspace_bytes,
            "unverified": list(self.unverified),
        }


_JETSON_NOTES = (
    "Lock clocks before measuring: sudo nvpmodel -q (mode), sudo nvpmodel -m 0 (MAXN), sudo jetson_clocks;"
    " watch power and clocks with tegrastats.",
    "CPU and GPU share memory: close other programs while building; the workspace is capped for this device.",
    "Engines are tied to the TensorRT version, GPU and platform: rebuild after a JetPack upgrade.",
)


def _jetpack6(name: str, description: str, trt_target: str) -> BundleTarget:
    """An Orin on JetPack 6.x: TensorRT 10.3, CUDA 12.6, Python 3.10 (TENSORRT.md)."""
    return BundleTarget(
        name=name,
        description=description,
        trt_target=trt_target,
        generation=10,
        tensorrt="10.3",
        cuda="12.6",
        python="3.10",
        tensorrt_install=JETPACK_TENSORRT,
        venv=JETSON_VENV,
        requirements=_JP6_REQUIREMENTS,
        notes=_JETSON_NOTES,
        unverified=("numpy<2 pin", "onnxruntime-gpu index"),
    )


def _server(generation: int, tensorrt_install: str, extra: str = "") -> BundleTarget:
    """An x86_64 GPU machine with TensorRT ``generation``.x from pip (CUDA 12 wheels)."""
    return BundleTarget(
        name=f"gpu-trt{generation}",
        description=f"x86_64 server or workstation GPU with TensorRT {generation}.x{extra}",
        trt_target="gpu",
        generation=generation,
        tensorrt=f"{generation}.x",
        cuda="12.x",
        python=">=3.10",
        tensorrt_install=tensorrt_install,
        venv=SERVER_VENV,
        requirements=(
            f"tensorrt-cu12>={generation},<{generation + 1}",
            "# cuda.bindings.runtime (what mmexport imports) exists since cuda-python 12.6.1",
            "cuda-python>=12.6.1,<13",
            "numpy>=1.24",
            *_MMEXPORT_IMPORTS,
            "# only to run the ONNX files on the GPU with onnxruntime:",
            "onnxruntime-gpu>=1.18",
        ),
        notes=("Engines are tied to the TensorRT version and GPU: build on the machine that runs them.",),
    )


_THOR = BundleTarget(
    name="jetson-thor-jp7",
    description="Jetson Thor on JetPack 7.x (no DLA)",
    trt_target="jetson-thor",
    generation=10,
    tensorrt="10.13",
    cuda="13.0",
    python="3.12",
    tensorrt_install=JETPACK_TENSORRT,
    venv=JETSON_VENV,
    requirements=(
        "# Unverified: JetPack 7 values come from release notes and public projects, not a device.",
        "# CUDA 13: NumPy 2 and cuda-python 13 (cuda-python 13 needs a CUDA 13 driver).",
        "numpy>=1.24",
        "cuda-python>=13,<14",
        *_MMEXPORT_IMPORTS,
        "# tensorrt: NOT from pip; JetPack's apt package, seen through --system-site-packages.",
        "# onnxruntime-gpu: no PyPI wheel for Jetson; no verified source for JetPack 7 here.",
    ),
    notes=_JETSON_NOTES,
    unverified=("tensorrt", "cuda", "python", "cuda-python pin", "numpy"),
)

BUNDLE_TARGETS: dict[str, BundleTarget] = {
    t.name: t
    for t in (
        _jetpack6("jetson-orin-jp6", "Jetson AGX Orin / Orin NX on JetPack 6.x", "jetson-orin"),
        _jetpack6(
            "jetson-orin-nano-jp6",
            "Jetson Orin Nano on JetPack 6.x (no DLA; 4-8 GB shared memory)",
            "jetson-orin-nano",
        ),
        _THOR,
        _server(10, "pip: tensorrt-cu12 wheels"),
        _server(11, "pip: tensorrt-cu12 wheels, tensorrt-cu13 for CUDA 13", " (strongly typed only)"),
    )
}


def bundle_target_names() -> list[str]:
    return list(BUNDLE_TARGETS)


def get_bundle_target(name: str) -> BundleTarget:
    try:
        return BUNDLE_TARGETS[name]
    except KeyError:
        raise MmexportError(
            f"unknown bundle target {name!r}; known: {', '.join(BUNDLE_TARGETS)}",
            hint="a bundle target is a device and its software stack, e.g. jetson-orin-jp6",
        ) from None
