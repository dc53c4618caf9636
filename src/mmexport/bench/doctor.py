"""``mmexport doctor``: what this machine can do for mmexport, and what to install for the rest.

Every probe tolerates absence and is bounded in time (commands through ``bench.environment``'s
runner, Python probes in a worker thread): doctor never fails. ``root``, ``run`` and
``import_module`` are parameters so that tests can stand in a fake machine.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from mmexport.bench.environment import Runner, gpu_info, jetson_state, run_quiet
from mmexport.runtime.backends.tensorrt.api import JETSON_TRT_INSTALL

T = TypeVar("T")
Importer = Callable[[str], ModuleType]
PROBE_TIMEOUT_S = 20.0
JETPACK = {35: "5.x", 36: "6.x", 38: "7.x"}  # L4T major -> JetPack


@dataclass
class Diagnosis:
    """The facts found (``facts``: one dict per subject), what works, and what is missing."""

    facts: dict[str, Any]
    can: list[str] = field(default_factory=list)
    cannot: list[dict[str, str]] = field(default_factory=list)  # what, why, install

    def to_dict(self) -> dict[str, Any]:
        return {**self.facts, "can": self.can, "cannot": self.cannot}


def probe(fn: Callable[[], T], timeout_s: float = PROBE_TIMEOUT_S) -> T | None:
    """``fn()``, or None when it raises or takes longer than ``timeout_s`` (left running, ignored)."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(fn).result(timeout=timeout_s)
    except Exception:  # a probe may fail any way it likes: ImportError, CUDA errors, timeouts
        return None
    finally:
        pool.shutdown(wait=False)


def diagnose(
    *, root: Path = Path("/"), run: Runner = run_quiet, import_module: Importer = importlib.import_module
) -> Diagnosis:
    facts = {
        "host": {"os": f"{platform.system()} {platform.release()}", "machine": platform.machine()},
        "python": platform.python_version(),
        "tensorrt": tensorrt_info(import_module),
        "cuda": cuda_info(run, import_module),
        "gpus": gpus(run),
        "jetson": jetson_info(root, run),
        "onnxruntime": onnxruntime_info(import_module),
        "torch": torch_info(import_module),
    }
    facts["dla"] = dla_info(facts, import_module)
    facts["suggested_target"] = suggested_target(facts)
    diagnosis = Diagnosis(facts)
    _capabilities(diagnosis)
    return diagnosis


def tensorrt_info(import_module: Importer) -> dict[str, Any]:
    trt = probe(lambda: import_module("tensorrt"))
    if trt is None:
        return {"installed": False}
    from mmexport.runtime.backends.tensorrt.api import generation

    return {
        "installed": True,
        "version": str(getattr(trt, "__version__", "?")),
        "generation": generation(trt),
    }


def cuda_info(run: Runner, import_module: Importer) -> dict[str, Any]:
    """CUDA runtime and driver versions: cuda-python when importable, else nvidia-smi's header."""

    def from_bindings() -> dict[str, Any]:
        cudart = import_module("cuda.bindings.runtime")
        _, runtime = cudart.cudaRuntimeGetVersion()
        _, driver = cudart.cudaDriverGetVersion()
        return {"runtime": _cuda_version(runtime), "driver": _cuda_version(driver), "via": "cuda-python"}

    found = probe(from_bindings)
    if found is not None:
        return found
    header = run(["nvidia-smi"]) or ""
    match = re.search(r"CUDA Version:\s*([0-9.]+)", header)
    return {
        "runtime": None,
        "driver": match.group(1) if match else None,
        "via": "nvidia-smi" if match else None,
    }


def _cuda_version(number: int) -> str:
    return f"{number // 1000}.{(number % 1000) // 10}"


def gpus(run: Runner) -> list[dict[str, str]]:
    """nvidia-smi's GPUs with their compute capability (absent on Jetsons: no nvidia-smi query)."""
    found = gpu_info(run)
    caps = (run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"]) or "").split()
    for gpu, cap in zip(found, caps, strict=False):
        gpu["compute_capability"] = cap
    return [{k: v for k, v in g.items() if not k.startswith("clocks")} for g in found]


def jetson_info(root: Path, run: Runner) -> dict[str, Any] | None:
    state = jetson_state(root, run)
    if state is None:
        return None
    l4t = _l4t_version(state.get("l4t") or "")
    major = int(l4t.split(".")[0]) if l4t else None
    return {
        "model": state.get("model"),
        "l4t": l4t,
        "jetpack": JETPACK.get(major) if major is not None else None,
        "power_mode": state.get("power_mode"),
        "clocks_locked": state.get("clocks_locked"),
    }


def _l4t_version(first_line: str) -> str | None:
    """``# R36 (release), REVISION: 4.0, ...`` -> ``36.4.0``."""
    match = re.search(r"R(\d+).*REVISION:\s*([0-9.]+)", first_line)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def onnxruntime_info(import_module: Importer) -> dict[str, Any]:
    ort = probe(lambda: import_module("onnxruntime"))
    if ort is None:
        return {"installed": False}
    providers = probe(lambda: list(ort.get_available_providers())) or []
    return {"installed": True, "version": str(getattr(ort, "__version__", "?")), "providers": providers}


def torch_info(import_module: Importer) -> dict[str, Any]:
    torch = probe(lambda: import_module("torch"))
    if torch is None:
        return {"installed": False}
    cuda = probe(lambda: bool(torch.cuda.is_available()))
    return {
        "installed": True,
        "version": str(getattr(torch, "__version__", "?")),
        "cuda_available": bool(cuda),
    }


def dla_info(facts: dict[str, Any], import_module: Importer) -> dict[str, Any]:
    """DLA cores: only TensorRT's builder knows, and it needs a GPU."""
    if not facts["tensorrt"]["installed"]:
        return {"cores": None, "note": "unknown: only TensorRT (builder.num_DLA_cores) can tell"}

    def count() -> int:
        trt = import_module("tensorrt")
        return int(trt.Builder(trt.Logger(trt.Logger.WARNING)).num_DLA_cores)

    cores = probe(count)
    if cores is None:
        return {"cores": None, "note": "unknown: TensorRT's builder could not start (no usable GPU?)"}
    return {"cores": cores, "note": "from TensorRT's builder"}


def suggested_target(facts: dict[str, Any]) -> str | None:
    """The ``--target`` for this machine, when it is recognisably one."""
    jetson = facts["jetson"]
    if jetson is not None:
        model = (jetson.get("model") or "").lower()
        if "thor" in model:
            return "jetson-thor"
        if "orin" in model:
            return "jetson-orin-nano" if "nano" in model else "jetson-orin"
        return None
    return "gpu" if facts["gpus"] else None


def _capabilities(d: Diagnosis) -> None:
    f = d.facts
    d.can.append("check ONNX models for TensorRT targets offline (mmexport check)")
    if f["torch"]["installed"]:
        d.can.append("export PyTorch models to ONNX (mmexport to-onnx)")
    else:
        d.cannot.append(_missing("export to ONNX", "torch is not installed", "pip install torch"))
    providers = f["onnxruntime"].get("providers", [])
    if f["onnxruntime"]["installed"]:
        d.can.append("parity gate, FP16/INT8 variants, run and bench with onnxruntime")
    else:
        why = "onnxruntime is not installed"
        d.cannot.append(_missing("parity gate, FP16/INT8, run, bench", why, "pip install 'mmexport[cpu]'"))
    if "CUDAExecutionProvider" in providers:
        d.can.append("run and bench on the GPU with onnxruntime (CUDAExecutionProvider)")
    elif f["gpus"] or f["jetson"]:
        why = "onnxruntime has no CUDAExecutionProvider"
        d.cannot.append(
            _missing("onnxruntime on the GPU", why, "pip install 'mmexport[gpu]' (instead of [cpu])")
        )
    _tensorrt_capabilities(d)


def _tensorrt_capabilities(d: Diagnosis) -> None:
    f = d.facts
    has_gpu = bool(f["gpus"] or f["jetson"])
    if not f["tensorrt"]["installed"]:
        install = JETSON_TRT_INSTALL if f["jetson"] else "pip install 'mmexport[trt]'"
        d.cannot.append(_missing("build and run TensorRT engines", "tensorrt is not installed", install))
    elif not has_gpu:
        why = "no NVIDIA GPU found (nvidia-smi, Jetson)"
        d.cannot.append(
            _missing("build and run TensorRT engines", why, "run on a machine with an NVIDIA GPU")
        )
    else:
        d.can.append(f"build and run TensorRT {f['tensorrt']['version']} engines (mmexport build)")
    if has_gpu and f["cuda"]["via"] != "cuda-python":
        why = "cuda-python is not importable (device buffers of the native TensorRT backend)"
        d.cannot.append(_missing("native TensorRT runtime buffers", why, _cuda_python_install(f["jetson"])))


def _cuda_python_install(jetson: dict[str, Any] | None) -> str:
    """JetPack 6 has CUDA 12.6: cuda-python 13 needs a CUDA 13 driver, and a later 12.x (12.9)
    may need a newer driver than JetPack's, so pin the 12.6 series there."""
    if jetson is not None and jetson.get("jetpack") == "6.x":
        return "pip install 'cuda-python==12.6.*' (JetPack 6 has CUDA 12.6)"
    return "pip install 'mmexport[gpu]'"


def _missing(what: str, why: str, install: str) -> dict[str, str]:
    return {"what": what, "why": why, "install": install}


def format_diagnosis(d: Diagnosis) -> str:
    f = d.facts
    trt = f["tensorrt"]
    cuda = f["cuda"]
    ort = f["onnxruntime"]
    torch = f["torch"]
    jetson = f["jetson"]
    rows = [
        ("python", f"{f['python']} ({f['host']['os']}, {f['host']['machine']})"),
        (
            "tensorrt",
            f"{trt['version']} (generation {trt['generation']})" if trt["installed"] else "not installed",
        ),
        (
            "cuda",
            f"runtime {cuda['runtime'] or '?'}, driver {cuda['driver'] or '?'} ({cuda['via'] or 'no probe'})",
        ),
        ("gpu", "; ".join(_gpu_text(g) for g in f["gpus"]) or "none found by nvidia-smi"),
        ("dla", str(f["dla"]["cores"]) if f["dla"]["cores"] is not None else f["dla"]["note"]),
        (
            "onnxruntime",
            f"{ort['version']}: {', '.join(ort['providers'])}" if ort["installed"] else "not installed",
        ),
        (
            "torch",
            f"{torch['version']}, CUDA {'available' if torch.get('cuda_available') else 'not available'}"
            if torch["installed"]
            else "not installed",
        ),
        ("jetson", _jetson_text(jetson) if jetson else "not a Jetson"),
        ("target", f"--target {f['suggested_target']}" if f["suggested_target"] else "none recognised"),
    ]
    lines = [f"{k:<12} {v}" for k, v in rows]
    lines += ["", "can:"] + [f"  - {c}" for c in d.can]
    if d.cannot:
        lines += ["cannot:"] + [f"  - {c['what']}: {c['why']} -> {c['install']}" for c in d.cannot]
    return "\n".join(lines)


def _gpu_text(g: dict[str, str]) -> str:
    cap = g.get("compute_capability")
    return f"{g.get('name')} (compute capability {cap or '?'}, driver {g.get('driver_version', '?')})"


def _jetson_text(j: dict[str, Any]) -> str:
    parts = [j.get("model") or "Jetson", f"L4T {j['l4t']}" if j.get("l4t") else None]
    parts += [
        f"JetPack {j['jetpack']}" if j.get("jetpack") else None,
        f"power mode {j.get('power_mode') or '?'}",
    ]
    return ", ".join(p for p in parts if p)
