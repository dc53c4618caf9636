"""The one ONNX reader: every user-given ``.onnx`` path is parsed here, with one set of errors.

Faults and what they say (each an ``ArtifactError`` naming the file):
``does not exist`` / ``is not a file``; ``cannot be parsed as ONNX (DecodeError: ...)``;
``has no graph: an empty or damaged ONNX file`` (an empty file parses as an empty ModelProto);
``refers to external data '...', which does not exist`` when its weights file is not beside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmexport.core.errors import ArtifactError, MissingDependencyError
from mmexport.core.files import require_utf8_path

if TYPE_CHECKING:
    import onnx

NO_GRAPH = "has no graph: an empty or damaged ONNX file"


def import_onnx(purpose: str = "reading ONNX files") -> object:
    """The ``onnx`` module, or a MissingDependencyError naming the extra to install."""
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("onnx", "cpu", purpose) from None
    return onnx


def check_file(path: str | Path) -> Path:
    """``path`` as a Path, refused (ArtifactError) when it is missing, not a file, or not a
    UTF-8 path (which the runtimes cannot open)."""
    path = Path(path)
    require_utf8_path(path)
    if not path.is_file():
        raise ArtifactError(str(path), "does not exist" if not path.exists() else "is not a file")
    return path


def read_onnx(path: str | Path, *, external_data: bool = True, nodes: bool = False) -> onnx.ModelProto:
    """Parse the ONNX file at ``path`` (with its external weights unless ``external_data`` is
    False); ``nodes``: also refuse a graph without a single node."""
    path = check_file(path)
    import_onnx()
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ArtifactError(str(path), f"cannot be parsed as ONNX ({_describe(e)})") from e
    if not model.HasField("graph") or (nodes and not model.graph.node):
        raise ArtifactError(str(path), NO_GRAPH)
    if external_data:
        _load_external_data(model, path)
    return model


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Read the weights an ONNX keeps beside it into ``model``; a missing or damaged file is named."""
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_model

    tensors = check_external_files(model, path)
    if not tensors:
        return
    try:
        load_external_data_for_model(model, str(path.parent))
    except Exception as e:  # a truncated data file, a location outside the folder
        location = ExternalDataInfo(tensors[0]).location
        raise ArtifactError(
            str(path.parent / location), f"cannot be read as {path.name}'s external data ({_describe(e)})"
        ) from e


def check_external_files(model: onnx.ModelProto, path: Path) -> list[onnx.TensorProto]:
    """``model``'s tensors kept in external files (relative to ``path``'s folder), refusing
    (ArtifactError naming ``path``) a model whose data file is not there."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    tensors = [t for t in graph_tensors(model.graph) if uses_external_data(t)]
    for location in {ExternalDataInfo(t).location for t in tensors}:
        if not (path.parent / location).is_file():
            raise ArtifactError(str(path), f"refers to external data {location!r}, which does not exist")
    return tensors


def graph_tensors(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    """Every tensor of ``graph``: initializers, constant attributes, and those of subgraphs."""
    found = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            found += ([attr.t] if attr.HasField("t") else []) + list(attr.tensors)
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                found += graph_tensors(sub)
    return found


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    first = text.splitlines()[0][:300] if text else ""
    return f"{type(error).__name__}{': ' + first if first else ''}"


EXTERNAL_THRESHOLD = 1024  # tensors of at least this many bytes go to the data file
DATA_ALIGNMENT = 4096  # each tensor starts on a page boundary, where onnxruntime can map it


def save_with_external_data(
    model: onnx.ModelProto,
    path: Path,
    *,
    extra_outputs: Iterable[onnx.ValueInfoProto] = (),
    threshold: int = EXTERNAL_THRESHOLD,
) -> Path:
    """Write ``model`` at ``path`` with its initializers of ``threshold`` bytes or more in
    ``<name>.data`` beside it, one tensor at a time; ``extra_outputs`` are appended to the written
    graph's outputs. Returns the data file's path.

    ``model`` is left as it is and never copied whole: onnx's ``save_model(save_as_external_data=
    True)`` moves the weights out of the proto it is given, so keeping the caller's proto took a
    copy of every weight first (and a graph with extra outputs, another). A model whose tensors
    already live in external files is written by onnx, on a copy (their locations are relative to
    a folder this function does not know)."""
    import onnx
    from onnx import numpy_helper

    data = path.with_name(path.name + ".data")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph_tensors(model.graph)):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        copy.graph.output.extend(extra_outputs)
        onnx.save_model(
            copy, str(path), save_as_external_data=True, location=data.name, size_threshold=threshold
        )
        return data
    skeleton = onnx.ModelProto()
    copy_fields(model, skeleton, skip="graph")
    copy_fields(model.graph, skeleton.graph, skip="initializer")
    skeleton.graph.output.extend(extra_outputs)
    with open(data, "wb") as out:
        for tensor in model.graph.initializer:
            written = skeleton.graph.initializer.add()
            raw = tensor.HasField("raw_data")
            size = len(tensor.raw_data) if raw else tensor.ByteSize()
            if size < threshold or tensor.data_type == onnx.TensorProto.STRING:
                written.CopyFrom(tensor)
                continue
            copy_fields(tensor, written, skip=_TENSOR_DATA)
            out.write(b"\0" * (-out.tell() % DATA_ALIGNMENT))
            offset = out.tell()
            out.write(tensor.raw_data if raw else numpy_helper.to_array(tensor).tobytes())
            written.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", data.name), ("offset", offset), ("length", out.tell() - offset)):
                written.external_data.add(key=key, value=str(value))
    onnx.save_model(skeleton, str(path))
    return data


PROTO_LIMIT = 2**31 - 1  # protobuf's limit on one message: onnx refuses to save a bigger model
_GRAPH_FIELD = 7  # ModelProto.graph
_INITIALIZER_FIELD = 5  # GraphProto.initializer


def save_model_streamed(model: onnx.ModelProto, path: Path) -> None:
    """Write ``model`` at ``path`` as ``onnx.save`` does, the same bytes, one initializer at a time.

    ``onnx.save`` serializes the whole proto into one bytes object first (two copies of every
    weight while it is copied out of protobuf: +470 MiB writing a 193 MB model); this writes the
    fields before and after the graph's initializers as they are, and each initializer as its own
    field (protobuf's encoding of a repeated message field is the fields one after another), so
    that at most one tensor is serialized at a time. A model with external tensors, or one over
    protobuf's 2 GB limit, is left to ``onnx.save`` (which writes the former's data files and
    refuses the latter)."""
    import onnx

    graph = model.graph
    inits = list(graph.initializer)
    sizes = [init.ByteSize() for init in inits]
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph_tensors(graph))
    graph_head = _fields(graph, lambda n: n < _INITIALIZER_FIELD)
    graph_tail = _fields(graph, lambda n: n > _INITIALIZER_FIELD)
    graph_size = len(graph_head) + len(graph_tail)
    graph_size += sum(1 + len(_varint(n)) + n for n in sizes)
    model_head = _fields(model, lambda n: n < _GRAPH_FIELD)
    model_tail = _fields(model, lambda n: n > _GRAPH_FIELD)
    total = len(model_head) + len(model_tail) + 1 + len(_varint(graph_size)) + graph_size
    if external or total > PROTO_LIMIT or not model.HasField("graph"):
        onnx.save(model, str(path))
        return
    with open(path, "wb") as out:
        out.write(model_head)
        out.write(_tag(_GRAPH_FIELD) + _varint(graph_size))
        out.write(graph_head)
        for init, size in zip(inits, sizes, strict=True):
            out.write(_tag(_INITIALIZER_FIELD) + _varint(size))
            out.write(init.SerializeToString())
        out.write(graph_tail)
        out.write(model_tail)


def _fields(message: Any, keep: Any) -> bytes:
    """``message`` serialized with only its fields whose number ``keep`` accepts."""
    part = type(message)()
    skip = " ".join(f.name for f, _ in message.ListFields() if not keep(f.number))
    copy_fields(message, part, skip=skip)
    return bytes(part.SerializeToString())


def _tag(number: int) -> bytes:
    return _varint(number << 3 | 2)  # wire type 2: length-delimited


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_TENSOR_DATA = (
    "raw_data float_data int32_data int64_data double_data uint64_data string_data "
    "external_data data_location"
)


def copy_fields(source: Any, target: Any, *, skip: str) -> None:
    """Copy every set field of proto message ``source`` into ``target`` but those named in ``skip``."""
    for field, value in source.ListFields():
        if field.name in skip.split():
            continue
        if field.label == field.LABEL_REPEATED:
            getattr(target, field.name).extend(value)
        elif field.message_type is not None:
            getattr(target, field.name).CopyFrom(value)
        else:
            setattr(target, field.name, value)
