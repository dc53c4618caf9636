"""Triton's ModelConfig, the part mmexport writes: typed, and rendered as ``config.pbtxt`` or JSON.

Field names, enum values and nesting follow Triton's ``model_config.proto``; ``to_dict`` is the
JSON form Triton itself prints (``GET v2/models/NAME/config``) and ``to_pbtxt`` the same message in
protobuf text format. The tests parse both with Triton's own schema (``tritonclient``'s
``model_config_pb2``). Written here rather than with ``model_config_pb2`` so that generating a
repository needs neither tritonclient nor grpc: the message is a dozen fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ONNX_PLATFORM = "onnxruntime_onnx"
TENSORRT_PLATFORM = "tensorrt_plan"
VERSION = "1"  # the version folder every repository gets

TRITON_DTYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
}
"""numpy dtype names -> Triton's DataType (``model_config.proto``)."""

KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}

_ENUM_FIELDS = {"data_type", "kind"}  # written bare in text format
_MAP_FIELDS = {"cc_model_filenames", "parameters"}  # map<string, string> in the schema


@dataclass(frozen=True)
class TensorConfig:
    """A ModelInput or ModelOutput: dims exclude the batch dim when max_batch_size > 0; -1 is variable.

    ``reshape`` is the shape the model itself has, when it differs from ``dims``: Triton refuses
    empty dims, so one value per sample ([batch] in the graph) is dims [1] with reshape [].
    """

    name: str
    data_type: str
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "data_type": self.data_type, "dims": list(self.dims)}
        if self.reshape is not None:
            out["reshape"] = {"shape": list(self.reshape)}
        return out


@dataclass(frozen=True)
class InstanceGroup:
    """``profile``: the TensorRT optimization profiles the instances use (Triton's default: "0" alone)."""

    kind: str  # KIND_GPU or KIND_CPU
    count: int = 1
    profile: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "count": self.count}
        if self.profile:
            out["profile"] = list(self.profile)
        return out


@dataclass(frozen=True)
class DynamicBatching:
    preferred_batch_size: tuple[int, ...] = ()
    max_queue_delay_microseconds: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.preferred_batch_size:
            out["preferred_batch_size"] = list(self.preferred_batch_size)
        out["max_queue_delay_microseconds"] = self.max_queue_delay_microseconds
        return out


@dataclass(frozen=True)
class Accelerator:
    """An execution accelerator (``optimization.execution_accelerators``) and its string parameters."""

    name: str
    parameters: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "parameters": dict(self.parameters)}


@dataclass(frozen=True)
class ModelConfig:
    """The model configuration mmexport generates (a subset of Triton's ModelConfig)."""

    name: str
    platform: str
    max_batch_size: int
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    instance_group: tuple[InstanceGroup, ...] = ()
    dynamic_batching: DynamicBatching | None = None
    gpu_accelerators: tuple[Accelerator, ...] = ()
    cc_model_filenames: Mapping[str, str] = field(default_factory=dict)

    @property
    def batched(self) -> bool:
        return self.max_batch_size > 0

    def to_dict(self) -> dict[str, Any]:
        """Triton's JSON form of the message (proto field names)."""
        out: dict[str, Any] = {
            "name": self.name,
            "platform": self.platform,
            "max_batch_size": self.max_batch_size,
            "input": [t.to_dict() for t in self.inputs],
            "output": [t.to_dict() for t in self.outputs],
        }
        if self.instance_group:
            out["instance_group"] = [g.to_dict() for g in self.instance_group]
        if self.dynamic_batching is not None:
            out["dynamic_batching"] = self.dynamic_batching.to_dict()
        if self.gpu_accelerators:
            accelerators = [a.to_dict() for a in self.gpu_accelerators]
            out["optimization"] = {"execution_accelerators": {"gpu_execution_accelerator": accelerators}}
        if self.cc_model_filenames:
            out["cc_model_filenames"] = dict(self.cc_model_filenames)
        return out

    def to_pbtxt(self) -> str:
        """``config.pbtxt``: the same message in protobuf text format."""
        return "\n".join(_message_lines(self.to_dict(), 0)) + "\n"


def _message_lines(message: Mapping[str, Any], depth: int) -> list[str]:
    pad = "  " * depth
    lines: list[str] = []
    for key, value in message.items():
        if key in _MAP_FIELDS:
            lines += [f"{pad}{key} {{ key: {_quote(k)} value: {_quote(v)} }}" for k, v in value.items()]
        elif isinstance(value, Mapping):
            lines += [f"{pad}{key} {{", *_message_lines(value, depth + 1), f"{pad}}}"]
        elif isinstance(value, list) and value and isinstance(value[0], Mapping):
            lines.append(f"{pad}{key} [")
            for i, item in enumerate(value):
                comma = "," if i < len(value) - 1 else ""
                lines += [f"{pad}  {{", *_message_lines(item, depth + 2), f"{pad}  }}{comma}"]
            lines.append(f"{pad}]")
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [ {', '.join(_scalar(key, v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(key, value)}")
    return lines


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and key not in _ENUM_FIELDS:
        return _quote(value)
    return str(value)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
