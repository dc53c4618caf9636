"""Where a benchmark ran: CPU, libraries, backends, GPU and Jetson state, detected and never required.

Every probe tolerates absence (no ``nvidia-smi``, no ``/proc``, not a Jetson): the field is then
None. ``root`` and ``run`` are parameters so that tests can stand in a fake machine.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmexport.core.manifest import package_versions

Runner = Callable[[Sequence[str]], "str | None"]
LIBRARIES = ("mmexport", "numpy", "onnxruntime", "onnxruntime-gpu", "tensorrt", "torch")
_GPU_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem")
_DEVFREQ_GPU = re.compile(r"gpu|\.g[a-z]\d+b$")


def run_quiet(command: Sequence[str]) -> str | None:
    """A command's stdout, or None when it is absent, fails or hangs."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def collect_environment(
    backends: Sequence[Mapping[str, Any]] = (), *, root: Path = Path("/"), run: Runner = run_quiet
) -> dict[str, Any]:
    """The report's ``environment``; ``warnings`` lists what makes the figures less trustworthy."""
    jetson = jetson_state(root, run)
    warnings = []
    if jetson is not None and jetson.get("clocks_locked") is False:
        warnings.append("Jetson clocks are not locked: run `sudo jetson_clocks` (figures vary with DVFS)")
    return {
        "host": host_info(root),
        "libraries": package_versions(*LIBRARIES),
        "backends": [dict(b) for b in backends],
        "gpus": gpu_info(run),
        "jetson": jetson,
        "warnings": warnings,
    }


def host_info(root: Path) -> dict[str, Any]:
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    governor = _read(root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return {
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu": cpu_model(root),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "cpu_governor": governor,
    }


def cpu_model(root: Path) -> str:
    text = _read(root / "proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model"):
        for line in text.splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def gpu_info(run: Runner) -> list[dict[str, str]]:
    """One entry per GPU that ``nvidia-smi`` lists (clocks in MHz); empty without it."""
    query = f"--query-gpu={','.join(_GPU_FIELDS)}"
    out = run(["nvidia-smi", query, "--format=csv,noheader,nounits"])
    gpus = []
    for line in (out or "").strip().splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) == len(_GPU_FIELDS):
            gpus.append(dict(zip(_GPU_FIELDS, values, strict=True)))
    return gpus


def jetson_state(root: Path, run: Runner) -> dict[str, Any] | None:
    """Model, L4T release, nvpmodel power mode and whether CPU and GPU clocks are pinned."""
    model = (_read(root / "proc/device-tree/model") or "").replace("\x00", "").strip()
    release = _read(root / "etc/nv_tegra_release")
    if "jetson" not in model.lower() and release is None:
        return None
    mode = run(["nvpmodel", "-q"])
    power_mode = None
    for line in (mode or "").splitlines():
        if "Power Mode" in line:
            power_mode = line.split(":", 1)[1].strip()
    return {
        "model": model or None,
        "l4t": release.splitlines()[0].strip() if release else None,
        "power_mode": power_mode,
        "clocks_locked": clocks_locked(root),
    }


def clocks_locked(root: Path) -> bool | None:
    """True when every CPU and the GPU run at a fixed frequency (min == max), as jetson_clocks sets."""
    pairs = []
    for cpu in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq")):
        pairs.append((_read(cpu / "scaling_min_freq"), _read(cpu / "scaling_max_freq")))
    for dev in sorted((root / "sys/class/devfreq").glob("*")):
        if _DEVFREQ_GPU.search(dev.name):
            pairs.append((_read(dev / "min_freq"), _read(dev / "max_freq")))
    known = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not known:
        return None
    return all(a == b for a, b in known)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None
