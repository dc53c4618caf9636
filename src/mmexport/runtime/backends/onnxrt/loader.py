"""Open an onnxruntime ``InferenceSession`` with the execution provider a ``BackendConfig`` asks for.

The TensorRT execution provider gets its optimization profile from the spec (every input at the
min / opt / max corner) and an engine cache, so that engines are built once, not per process.
onnxruntime falls back to the CPU when a provider cannot start; we refuse instead, so that a
benchmark never reports CPU figures under a GPU name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mmexport.core.errors import ArtifactError, BackendError, MissingDependencyError
from mmexport.core.spec import ModelSpec
from mmexport.runtime.backends.base import BackendConfig
from mmexport.runtime.backends.onnxrt.cuda_graph import CAPTURE_HINT, refuse_control_flow

OPTIONS = ("cuda_graph",)
"""``Session(options=...)`` this backend reads: ``cuda_graph`` (CUDA provider only, see cuda_graph.py)."""

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("onnxruntime", "cpu", "running ONNX artifacts") from None
    return onnxruntime


def resolve_provider(config: BackendConfig) -> str:
    """``cpu``, ``cuda`` or ``tensorrt``: the config's provider, else the one its device implies."""
    provider = config.provider or ("cuda" if config.device == "cuda" else "cpu")
    if provider not in PROVIDERS:
        raise BackendError(
            "onnxruntime", f"unknown execution provider {provider!r}", hint=f"one of {', '.join(PROVIDERS)}"
        )
    if (provider == "cpu") != (config.device == "cpu"):
        raise BackendError(
            "onnxruntime",
            f"provider {provider!r} does not run on device {config.device!r}",
            hint="cpu runs on device cpu; cuda and tensorrt on device cuda",
        )
    return provider


def profile_options(spec: ModelSpec) -> dict[str, str]:
    """``trt_profile_{min,opt,max}_shapes`` as the TensorRT EP reads them: ``name:1x3x64x64,...``."""
    out = {}
    for corner in ("min", "opt", "max"):
        point = spec.point(corner)
        out[f"trt_profile_{corner}_shapes"] = ",".join(
            f"{i.name}:{'x'.join(str(d) for d in i.concrete_shape(point))}" for i in spec.inputs
        )
    return out


def cuda_graph_wanted(config: BackendConfig) -> bool:
    """Whether the config asks for CUDA graphs; refused (``BackendError``) off the CUDA provider,
    and for options this backend does not know."""
    unknown = sorted(set(config.options) - set(OPTIONS))
    if unknown:
        raise BackendError(
            "onnxruntime",
            f"unknown option {unknown[0]!r} (this backend takes {', '.join(OPTIONS)})",
            hint="options are backend-specific: cuda_graph here; cuda_graph and pinned for TensorRT engines",
        )
    wanted = config.options.get("cuda_graph", False)
    if not isinstance(wanted, bool):
        raise BackendError("onnxruntime", f"option cuda_graph must be True or False, got {wanted!r}")
    if wanted and resolve_provider(config) != "cuda":
        raise BackendError(
            "onnxruntime",
            f"cuda_graph needs device 'cuda' and the CUDA execution provider, got device {config.device!r}"
            + (f" with provider {config.provider!r}" if config.provider else ""),
            hint="open the session with device='cuda' (mmexport: --device cuda), or leave cuda_graph off",
        )
    return wanted


def provider_list(provider: str, path: Path, spec: ModelSpec | None, config: BackendConfig) -> list[Any]:
    """The ``providers=`` argument: the chosen provider first, with its options, then fallbacks."""
    cuda_options: dict[str, Any] = {"device_id": config.device_id}
    if provider == "cuda" and config.options.get("cuda_graph"):
        cuda_options["enable_cuda_graph"] = "1"
    cuda = ("CUDAExecutionProvider", cuda_options)
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider == "cuda":
        return [cuda, "CPUExecutionProvider"]
    cache = str(config.cache_dir or Path(f"{path}.trt-cache"))
    trt: dict[str, Any] = {
        "device_id": config.device_id,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": cache,
    }
    if spec is not None:
        trt.update(profile_options(spec))
    return [("TensorrtExecutionProvider", trt), cuda, "CPUExecutionProvider"]


def require_provider(ort: Any, wanted: str) -> None:
    """Refuse (``BackendError``) an onnxruntime build without the execution provider ``wanted``."""
    available = ort.get_available_providers()
    if wanted not in available:
        raise BackendError(
            "onnxruntime",
            f"{wanted} is not in this onnxruntime build (it has {', '.join(available)})",
            hint="pip install 'mmexport[gpu]' (onnxruntime-gpu, instead of onnxruntime)",
        )


def open_session(path: Path, spec: ModelSpec | None, config: BackendConfig) -> tuple[Any, str]:
    """The session and the provider key it runs on; errors name what to install or fix."""
    ort = import_onnxruntime()
    provider = resolve_provider(config)
    wanted = PROVIDERS[provider]
    require_provider(ort, wanted)
    graphs = cuda_graph_wanted(config)
    if graphs:
        refuse_control_flow(path)  # before onnxruntime's own, less specific, refusal
    quiet_default_logger(ort)
    options = ort.SessionOptions()
    options.log_severity_level = log_severity()
    if config.threads is not None:
        options.intra_op_num_threads = config.threads
    if config.spin is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spin else "0")
    try:
        session = ort.InferenceSession(
            str(path),
            options,
            providers=provider_list(provider, path, spec, config),
            # onnxruntime retries a failed load on its fallback providers, printing "EP Error" on
            # stdout first; on the CPU the retry can only fail again, and stdout is the caller's
            enable_fallback=0 if provider == "cpu" else 1,
        )
    except Exception as e:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
        if graphs and "graph capture" in str(e):  # its refusal to capture this model
            raise BackendError(
                "onnxruntime", f"cuda_graph cannot capture {path.name}: {first_line(e)}", hint=CAPTURE_HINT
            ) from e
        raise ArtifactError(str(path), f"onnxruntime cannot load it: {first_line(e)}") from e
    if wanted not in session.get_providers():
        raise BackendError(
            "onnxruntime",
            f"{wanted} could not start; not falling back to {session.get_providers()[0]}",
            hint="mmexport --debug shows onnxruntime's log, which says why",
        )
    return session, provider


EXTERNAL_FOLDER_KEY = "session.model_external_initializers_file_folder_path"
NO_QDQ_FUSIONS_KEY = "session.disable_quant_qdq"
IN_MEMORY = "ONNX model (in memory)"


def model_name(model: bytes | str | Path, name: str | None = None) -> str:
    """What errors call a model: its path, else ``name``, else ``IN_MEMORY``."""
    return (name or IN_MEMORY) if isinstance(model, bytes) else str(model)


def open_model(
    model: bytes | str | Path,
    *,
    optimize: bool = True,
    threads: int | None = None,
    mem_pattern: bool = True,
    weights_folder: Path | None = None,
    name: str | None = None,
    fold_dequantize: bool = False,
) -> Any:
    """A CPU session over an ONNX model given as bytes (a serialized proto) or a path, for the
    stages that check a model rather than deploy it (parity, calibration, accuracy).

    ``weights_folder``: where the external data of a model given as bytes lies (its locations
    are relative to it): a graph read without its weights (``core.onnx_mapped``) runs on the
    weights in its file, which onnxruntime reads itself. ``name``: what errors call a model given
    as bytes (default: ``IN_MEMORY``).

    ``fold_dequantize``: with ``optimize=False``, dequantize each constant weight of a Q/DQ model
    once, when the session is made (onnxruntime's constant folding, which skips DequantizeLinear
    unless its QDQ fusions are off), instead of on every run; nothing else is fused, so
    activations are still quantized and dequantized as written (2.2x faster runs on a 96M-parameter
    INT8 model on the CPU; the outputs differ only where the prepacked weights' float sums round
    an activation to the next INT8 step: ``benchmarks/evaluation_paths.py``).

    ``optimize=False`` computes the graph as written: onnxruntime's optimizations would fold
    FP32 -> FP16 -> FP32 cast pairs (hiding an FP16 overflow) and fuse away observed tensors.
    ``mem_pattern=False`` turns off onnxruntime's memory pattern (activation buffers planned
    for the shapes seen and held between runs): less resident memory for a session that runs a
    few batches once (135 MiB less on a 96M-parameter FP16 model), at the cost of allocating
    per run.
    """
    ort = import_onnxruntime()
    quiet_default_logger(ort)
    options = ort.SessionOptions()
    options.log_severity_level = min(log_severity(), 3)  # errors too: the stages report them
    if not optimize and fold_dequantize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.add_session_config_entry(NO_QDQ_FUSIONS_KEY, "1")
    elif not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    if not mem_pattern:
        options.enable_mem_pattern = False
    if weights_folder is not None:
        options.add_session_config_entry(EXTERNAL_FOLDER_KEY, str(weights_folder))
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
        where = model_name(model, name)
        raise ArtifactError(where, f"onnxruntime cannot load it: {first_line(e)}") from e


def run_errors() -> tuple[type[BaseException], ...]:
    """What onnxruntime raises when a run fails: its own classes (Fail, InvalidArgument, ...),
    plus RuntimeError when it cannot make an input tensor and MemoryError when it cannot allocate one."""
    state = import_onnxruntime().capi.onnxruntime_pybind11_state
    return (
        *(c for c in vars(state).values() if isinstance(c, type) and issubclass(c, Exception)),
        RuntimeError,
        MemoryError,
    )


def quiet_default_logger(ort: Any) -> None:
    """onnxruntime's environment (default) logger at errors only, warnings with ``mmexport --debug``.

    Sessions log through their own logger (``log_severity_level``), but some lines come from the
    environment's: onnxruntime 1.31 warns ``No registered plugin EP device found for
    'CUDAExecutionProvider'`` at every CUDA session it opens."""
    setter = getattr(ort, "set_default_logger_severity", None)  # in onnxruntime since 1.5
    if setter is not None:
        setter(2 if logging.getLogger("mmexport").isEnabledFor(logging.DEBUG) else 3)


def log_severity() -> int:
    """onnxruntime's own log level: fatal only (4), since each failure becomes one error line of
    ours (its ``[E:onnxruntime ...]`` line would repeat it, in colour, before ours); warnings (2)
    when the "mmexport" logger is at DEBUG (``mmexport --debug``)."""
    return 2 if logging.getLogger("mmexport").isEnabledFor(logging.DEBUG) else 4


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
