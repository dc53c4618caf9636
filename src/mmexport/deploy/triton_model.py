"""From artifacts (spec, graph I/O, engine profiles) and options to a Triton model: a pure function.

``make_model`` reads no file and writes none: it returns the ModelConfig, the files the model
folder gets (where each comes from), the sha256 each copy must have, the perf_analyzer command and
notes. ``mmexport.deploy.triton`` writes them.

Batching: when every input and every output leads with the same dynamic named dim, that dim is
Triton's batch dim: ``max_batch_size`` is its max (or ``--max-batch``, inside its range) and it
is left out of ``dims``. Otherwise ``max_batch_size`` is 0 and the dims are the full shapes.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmexport.core.errors import ArtifactError, MmexportError
from mmexport.core.spec import INT_DTYPES, DimSpec, ModelSpec
from mmexport.deploy.triton_artifacts import DeployArtifact
from mmexport.deploy.triton_config import (
    KINDS,
    ONNX_PLATFORM,
    TENSORRT_PLATFORM,
    TRITON_DTYPES,
    Accelerator,
    DynamicBatching,
    InstanceGroup,
    ModelConfig,
    TensorConfig,
)
from mmexport.deploy.triton_layout import engine_dims, engine_profiles, model_files
from mmexport.runtime.backends.base import TensorInfo

DEFAULT_WORKSPACE = 1 << 30  # the onnxruntime backend's own default for max_workspace_size_bytes
DEFAULT_QUEUE_DELAY_US = 100
PERF_CONCURRENCY = "1:4"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_NAME = 200  # file systems take 255 bytes; the staging folder's name adds up to 30
NAME_RULE = f"letters, digits, '_', '.' and '-', at most {MAX_NAME}, starting with a letter or digit"


class TritonError(MmexportError):
    """An option the artifacts cannot honour; ``option`` names it, ``expected`` / ``actual`` the values."""

    def __init__(
        self, option: str, message: str, *, expected: Any = None, actual: Any = None, hint: str | None = None
    ) -> None:
        self.option = option
        self.expected = expected
        self.actual = actual
        super().__init__(f"{option}: {message}", hint=hint)


@dataclass(frozen=True)
class TritonOptions:
    """What ``mmexport triton`` may be asked; None means "derive it from the artifacts"."""

    name: str | None = None
    max_batch: int | None = None
    instances: int = 1
    kind: str = "gpu"  # "gpu" or "cpu"
    dynamic_batching: bool | None = None  # None: on when the model has a batch dim
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    trt_accelerator: bool = False
    fp16: bool = False
    workspace_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.name is not None and not valid_name(self.name):
            raise TritonError(
                "--name",
                f"{self.name[: MAX_NAME + 1]!r} is not a usable model folder name ({NAME_RULE})",
                expected=NAME_RULE,
                actual=self.name,
            )
        for option, value, low in (
            ("--max-batch", self.max_batch, 1),
            ("--instances", self.instances, 1),
            ("--max-queue-delay", self.max_queue_delay_us, 0),
            ("--workspace", self.workspace_bytes, 1),
        ):
            if value is not None and value < low:
                raise TritonError(
                    option, f"must be >= {low}, got {value}", expected=f">= {low}", actual=value
                )
        if self.kind not in KINDS:
            raise TritonError("--kind", f"must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.trt_accelerator and self.kind == "cpu":
            raise TritonError("--trt-accelerator", "is a GPU accelerator; it cannot run with --kind cpu")
        for option, given in (("--fp16", self.fp16), ("--workspace", self.workspace_bytes is not None)):
            if given and not self.trt_accelerator:
                raise TritonError(option, "sets the TensorRT accelerator; add --trt-accelerator")


@dataclass(frozen=True)
class TritonModel:
    """Everything the model folder gets, decided before anything is written."""

    config: ModelConfig
    files: Mapping[str, Path]  # path inside the model folder -> the file copied there
    sha256: Mapping[str, str]  # path inside the model folder -> the sha256 its manifest records
    perf_analyzer: str
    notes: tuple[str, ...] = field(default_factory=tuple)


def valid_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and len(name) <= MAX_NAME


def make_model(artifacts: Sequence[DeployArtifact], options: TritonOptions | None = None) -> TritonModel:
    """The Triton model for ``artifacts`` (one ONNX, or engines for several GPUs); see the module doc."""
    options = options or TritonOptions()
    first = artifacts[0]
    engines = first.kind == "engine"
    _check_platform_options(first, options)
    notes: list[str] = []
    dims = engine_dims(first, notes) if engines else dict(first.spec.dims)
    batch, why_not = batch_dim(first, dims)
    max_batch = _max_batch(first, batch, why_not, options.max_batch)
    if batch is None:
        notes.append(f"no batch dim: {why_not}; max_batch_size is 0 and dims are full shapes")
    elif batch.min > 1:
        notes.append(
            f"dim {batch.name!r} starts at {batch.min}; Triton also sends smaller batches, which will fail"
        )
    files, checksums, cc_files = model_files(artifacts, notes)
    config = ModelConfig(
        name=options.name or default_name([a.path for a in artifacts]),
        platform=TENSORRT_PLATFORM if engines else ONNX_PLATFORM,
        max_batch_size=max_batch,
        inputs=tuple(
            _tensor_config(first, "input", t, i.shape, dims, batch)
            for i, t in zip(first.spec.inputs, first.inputs, strict=True)
        ),
        outputs=tuple(_tensor_config(first, "output", t, t.shape, dims, batch) for t in first.outputs),
        instance_group=(InstanceGroup(KINDS[options.kind], options.instances, engine_profiles(first)),),
        dynamic_batching=_dynamic_batching(batch, max_batch, options),
        gpu_accelerators=(tensorrt_accelerator(first.precision, options),) if options.trt_accelerator else (),
        cc_model_filenames=cc_files,
    )
    notes += _io_notes(first)
    return TritonModel(
        config, files, checksums, perf_analyzer_command(config, first.spec, dims, batch), tuple(notes)
    )


def _check_platform_options(first: DeployArtifact, options: TritonOptions) -> None:
    if first.kind != "engine":
        return
    if options.kind == "cpu":
        raise TritonError(
            "--kind cpu", "TensorRT engines run on GPUs only", hint="pass the ONNX file to serve on CPUs"
        )
    if options.trt_accelerator:
        raise TritonError(
            "--trt-accelerator",
            "applies to ONNX models; engines are TensorRT already",
            hint="drop --trt-accelerator",
        )


def batch_dim(artifact: DeployArtifact, dims: Mapping[str, DimSpec]) -> tuple[DimSpec | None, str]:
    """The dynamic dim every input and output leads with, or None and the reason there is none."""
    leading = {i.shape[0] if i.shape else None for i in artifact.spec.inputs}
    first = next(iter(leading))
    if len(leading) > 1 or not isinstance(first, str):
        shown = ", ".join(f"{i.name} [{', '.join(map(str, i.shape))}]" for i in artifact.spec.inputs)
        return None, f"the inputs do not all lead with the same named dim ({shown})"
    dim = dims[first]
    if not dim.dynamic:
        return None, f"the inputs' leading dim {first!r} is fixed at {dim.min}"
    for out in artifact.outputs:
        if not out.shape or out.shape[0] != first:
            shape = ", ".join("?" if d is None else str(d) for d in out.shape)
            return (
                None,
                f"output {out.name!r} does not lead with dim {first!r} in the graph (its shape is [{shape}])",
            )
    return dim, ""


def _max_batch(artifact: DeployArtifact, batch: DimSpec | None, why_not: str, asked: int | None) -> int:
    if batch is None:
        if asked is not None:
            raise TritonError(f"--max-batch {asked}", f"{artifact.path.name} cannot batch: {why_not}")
        return 0
    if asked is None:
        if artifact.manifest is None and artifact.kind == "onnx":
            raise TritonError(
                "--max-batch",
                f"{artifact.path.name} has no manifest, so dim {batch.name!r} has no known maximum; give one",
                hint="or export with mmexport to-onnx, whose manifest carries the spec's ranges",
            )
        return batch.max
    if not batch.min <= asked <= batch.max:
        raise TritonError(
            f"--max-batch {asked}",
            f"outside the range of dim {batch.name!r} in {artifact.path.name}, {batch.min}..{batch.max}",
            expected=(batch.min, batch.max),
            actual=asked,
            hint="the ONNX was checked against PyTorch, and engines are built, for that range only",
        )
    return asked


def _tensor_config(
    artifact: DeployArtifact,
    kind: str,
    tensor: TensorInfo,
    shape: Sequence[int | str | None],
    dims: Mapping[str, DimSpec],
    batch: DimSpec | None,
) -> TensorConfig:
    """One input or output; a tensor with no dims left (one value per sample) is dims [1], reshape []."""
    data_type = _triton_dtype(artifact, tensor)
    triton_dims = _dims(shape, dims, batch)
    if triton_dims:
        return TensorConfig(tensor.name, data_type, triton_dims)
    if batch is None:
        raise ArtifactError(
            str(artifact.path),
            f"{kind} {tensor.name!r} is a scalar, and the model has max_batch_size 0: Triton takes "
            "neither empty dims nor an empty reshape without a batch dim",
            hint="give it a dim of size 1 in the model",
        )
    return TensorConfig(tensor.name, data_type, (1,), reshape=())


def _dims(
    shape: Sequence[int | str | None], dims: Mapping[str, DimSpec], batch: DimSpec | None
) -> tuple[int, ...]:
    """Triton dims: fixed sizes as they are, dynamic named dims and unknown axes -1, no batch dim."""
    values = [_size(d, dims) for d in shape]
    return tuple(values[1:] if batch is not None else values)


def _size(d: int | str | None, dims: Mapping[str, DimSpec]) -> int:
    if isinstance(d, int):
        return d
    if isinstance(d, str) and d in dims and not dims[d].dynamic:
        return dims[d].min
    return -1


def _triton_dtype(artifact: DeployArtifact, tensor: TensorInfo) -> str:
    try:
        return TRITON_DTYPES[tensor.dtype]
    except KeyError:
        raise ArtifactError(
            str(artifact.path),
            f"{tensor.name!r} has type {tensor.dtype}, which Triton's model config has no data type for",
        ) from None


def _dynamic_batching(
    batch: DimSpec | None, max_batch: int, options: TritonOptions
) -> DynamicBatching | None:
    if batch is None:
        if options.dynamic_batching:
            raise TritonError(
                "--dynamic-batching", "needs a batch dim, and this model has none (max_batch_size 0)"
            )
        return None
    if options.dynamic_batching is False:
        return None
    preferred = sorted({min(batch.opt, max_batch), max_batch})
    return DynamicBatching(tuple(preferred), options.max_queue_delay_us)


def tensorrt_accelerator(precision: str, options: TritonOptions) -> Accelerator:
    """onnxruntime's TensorRT execution provider inside Triton's onnxruntime backend.

    Keys from the backend's README (triton-inference-server/onnxruntime_backend, "ONNX Runtime with
    TensorRT optimization"): ``precision_mode`` "FP32" | "FP16" | "INT8" (trt_fp16_enable /
    trt_int8_enable) and ``max_workspace_size_bytes`` (trt_max_workspace_size). A Q/DQ model takes
    INT8 with no calibration table (the README: a table given for a Q/DQ model fails the session).
    """
    if precision == "int8":
        if options.fp16:
            raise TritonError(
                "--fp16",
                "the TensorRT accelerator takes one precision_mode, and a Q/DQ INT8 model needs INT8",
                hint="drop --fp16",
            )
        mode = "INT8"
    else:
        mode = "FP16" if precision == "fp16" or options.fp16 else "FP32"
    workspace = options.workspace_bytes or DEFAULT_WORKSPACE
    return Accelerator("tensorrt", {"precision_mode": mode, "max_workspace_size_bytes": str(workspace)})


def perf_analyzer_command(
    config: ModelConfig, spec: ModelSpec, dims: Mapping[str, DimSpec], batch: DimSpec | None
) -> str:
    """perf_analyzer at the spec's opt shapes: ``--shape`` without the batch dim, ``-b`` the opt batch."""
    opt = {name: d.opt for name, d in dims.items()}
    parts = ["perf_analyzer", "-m", config.name]
    for inp, tensor in zip(spec.inputs, config.inputs, strict=True):
        if -1 in tensor.dims:
            shape = inp.concrete_shape(opt)[1 if batch is not None else 0 :]
            parts += ["--shape", f"{inp.name}:{','.join(map(str, shape))}"]
    if batch is not None:
        parts += ["-b", str(min(batch.opt, config.max_batch_size))]
    parts += ["--concurrency-range", PERF_CONCURRENCY]
    return shlex.join(parts)


def _io_notes(artifact: DeployArtifact) -> list[str]:
    notes = []
    if artifact.manifest is None:
        notes.append(
            f"{artifact.path.name} has no manifest: dims come from its graph, and the perf_analyzer "
            "shapes use 1 for every dynamic dim; edit them to real sizes"
        )
    for inp, tensor in zip(artifact.spec.inputs, artifact.inputs, strict=True):
        if inp.dtype != tensor.dtype:
            notes.append(
                f"input {inp.name!r} is {tensor.dtype} in the graph ({inp.dtype} in the spec); "
                "the config follows the graph"
            )
        if inp.dtype in INT_DTYPES and inp.range is not None:
            low, high = inp.range
            notes.append(
                f"input {inp.name!r} takes values in [{low}, {high}); perf_analyzer's random data does not "
                "know that: give real data with --input-data"
            )
    return notes


def default_name(paths: Sequence[Path]) -> str:
    """The file name's parts before its suffix that all artifacts share, joined by ``_``.

    ``fusion.fp16.onnx`` -> ``fusion_fp16``; ``model.orin.engine`` + ``model.thor.engine`` -> ``model``.
    """
    stems = [p.name.rsplit(".", 1)[0].split(".") for p in paths]
    common: list[str] = []
    for parts in zip(*stems, strict=False):  # as far as the shortest name
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    name = "_".join(common or stems[0])
    return name if valid_name(name) else "model"
