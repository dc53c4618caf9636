"""ONNX models read without their weights: the graph in memory, the weights left in the file.

Parsing a 385 MB ONNX file takes 0.28 s and holds every weight in memory, though most stages
only look at the graph and let onnxruntime read the weights itself. ``read_mapped`` walks the
file's protobuf encoding instead (4 ms; ``benchmarks/evaluation_paths.py``): every initializer of more than
``INLINE_LIMIT`` bytes becomes an external-data reference into the ONNX file itself, at the
offset where its bytes lie. onnxruntime then loads the graph from memory and reads those weights
from the file (``open_model(..., weights_folder=...)``); ``MappedModel.array`` reads one of them
for the code that needs its values.

Its references name the ONNX file itself: code that lists the data files a model keeps beside it
(to copy or bundle them) reads the file with ``read_onnx(path, external_data=False)`` instead.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmexport.core.onnx_file import NO_GRAPH, check_external_files, check_file, import_onnx, read_onnx

if TYPE_CHECKING:
    import numpy as np
    import onnx

INLINE_LIMIT = 4096  # bytes: smaller tensors stay in the proto (shape data that inference reads)
_GRAPH = 7  # ModelProto.graph
_INITIALIZER = 5  # GraphProto.initializer
_RAW_DATA = 9  # TensorProto.raw_data
_LENGTH_DELIMITED = 2


@dataclass(frozen=True)
class MappedModel:
    """An ONNX file's model whose large weights stay in the file: ``proto`` has every node and
    initializer (name, type, dims), the large initializers as external data relative to
    ``folder`` (the file's own folder), which is what onnxruntime is given to read them."""

    proto: onnx.ModelProto
    path: Path
    stamp: tuple[int, ...] = ()  # the file's identity when it was read (see ``check_unchanged``)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def check_unchanged(self) -> None:
        """Refuse (ArtifactError) a file written over since it was read: its weights, which
        onnxruntime reads from the file, would no longer be those of the graph read (or of the
        sha256 recorded for it). A file replaced by a rename keeps the old weights where they are
        mapped already, but is refused as well."""
        if self.stamp and _stamp(self.path) != self.stamp:
            from mmexport.core.errors import ArtifactError

            raise ArtifactError(
                str(self.path),
                "changed while it was being read (written over by another program?)",
                hint="run again once it is complete",
            )

    def array(self, tensor: onnx.TensorProto) -> np.ndarray:
        """The values of one of ``proto``'s tensors, read from the file when they are there."""
        from onnx import numpy_helper

        return numpy_helper.to_array(tensor, base_dir=str(self.folder))

    def inline(self, tensor: onnx.TensorProto) -> onnx.TensorProto:
        """A copy of one of ``proto``'s tensors with its data in it (as ``onnx.load`` gives it)."""
        return inline_tensor(tensor, self.folder)

    def with_outputs(self, outputs: list[onnx.ValueInfoProto]) -> bytes:
        """``proto`` serialized with ``outputs`` added to its graph's (the weights stay in the file)."""
        import onnx

        if not outputs:
            return bytes(self.proto.SerializeToString())
        copy = onnx.ModelProto()
        copy.CopyFrom(self.proto)
        copy.graph.output.extend(outputs)
        return bytes(copy.SerializeToString())


def graph_proto(model: onnx.ModelProto | MappedModel) -> onnx.ModelProto:
    """The proto of ``model``: a mapped model's holds its graph, its large weights in the file."""
    return model.proto if isinstance(model, MappedModel) else model


def inline_tensor(tensor: onnx.TensorProto, folder: str | Path) -> onnx.TensorProto:
    """A copy of ``tensor`` with its external data (relative to ``folder``) read into it."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_tensor

    copy = onnx.TensorProto()
    copy.CopyFrom(tensor)
    if copy.data_location == onnx.TensorProto.EXTERNAL:
        load_external_data_for_tensor(copy, str(folder))
        copy.ClearField("data_location")
        copy.ClearField("external_data")
    return copy


def read_mapped(path: str | Path, *, external_data: bool = True) -> MappedModel:
    """The model of the ONNX file at ``path`` with its large weights left in the file; a file
    whose encoding this reader does not follow is parsed whole instead (and a damaged one refused
    with ``read_onnx``'s errors). ``external_data=False``: for a look at the graph alone, neither
    check nor read the data files an ONNX keeps beside it."""
    path = check_file(path)
    import_onnx()
    stamp = _stamp(path)
    try:
        proto = _skeleton(path)
    except Exception:  # not a protobuf this walk follows: the full parser says what is wrong
        proto = None
    if proto is None:
        return MappedModel(read_onnx(path, external_data=external_data), path)
    if not proto.HasField("graph"):
        from mmexport.core.errors import ArtifactError

        raise ArtifactError(str(path), NO_GRAPH)
    if external_data:
        check_external_files(proto, path)
    return MappedModel(proto, path, stamp)


def _stamp(path: Path) -> tuple[int, ...]:
    """What changes when a file is written over or replaced: inode, size, modification time."""
    try:
        status = os.stat(path)
    except OSError:
        return ()
    return (status.st_ino, status.st_size, status.st_mtime_ns)


def _skeleton(path: Path) -> onnx.ModelProto | None:
    """``path``'s model with each large ``raw_data`` replaced by a reference to where it lies in
    ``path``; None when the file has no (or more than one) top-level graph field."""
    import onnx

    with open(path, "rb") as file, _mapped(file) as data:
        head = bytearray()
        graph: tuple[int, int] | None = None
        for number, wire, start, body, end in _fields(data, 0, len(data)):
            if number == _GRAPH and wire == _LENGTH_DELIMITED:
                if graph is not None:
                    return None  # repeated graph fields merge: leave that to protobuf
                graph = (body, end)
            else:
                head += data[start:end]
        if graph is None:
            return None
        rest = bytearray()
        initializers: list[onnx.TensorProto] = []
        for number, wire, start, body, end in _fields(data, *graph):
            if number == _INITIALIZER and wire == _LENGTH_DELIMITED:
                initializers.append(_tensor(data, body, end, path.name))
            else:
                rest += data[start:end]
    model = onnx.ModelProto.FromString(bytes(head))
    model.graph.ParseFromString(bytes(rest))
    model.graph.initializer.extend(initializers)
    return model


def _tensor(data: mmap.mmap | bytes, start: int, end: int, location: str) -> onnx.TensorProto:
    """The TensorProto encoded in ``data[start:end]``, its raw data (when large) as a reference."""
    import onnx

    fields = bytearray()
    raw: tuple[int, int] | None = None
    for number, wire, head, body, stop in _fields(data, start, end):
        if number == _RAW_DATA and wire == _LENGTH_DELIMITED and stop - body > INLINE_LIMIT:
            raw = (body, stop - body)
        else:
            fields += data[head:stop]
    tensor = onnx.TensorProto.FromString(bytes(fields))
    if raw is not None and (tensor.external_data or tensor.data_location == onnx.TensorProto.EXTERNAL):
        raise ValueError("a tensor with both raw data and external data")  # parsed whole instead
    if raw is not None:
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", raw[0]), ("length", raw[1])):
            tensor.external_data.add(key=key, value=str(value))
    return tensor


class _mapped:
    """A read-only memory map of an open file (an empty file maps as empty bytes)."""

    def __init__(self, file: object) -> None:
        self._file = file
        self._map: mmap.mmap | None = None

    def __enter__(self) -> mmap.mmap | bytes:
        fileno = self._file.fileno()  # type: ignore[attr-defined]
        try:
            self._map = mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file
            return b""
        return self._map

    def __exit__(self, *exc: object) -> None:
        if self._map is not None:
            self._map.close()


def _fields(data: mmap.mmap | bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """(field number, wire type, start of the field, start of its value, end) for each field of
    the message encoded in ``data[start:end]``; ValueError for an encoding protobuf would refuse."""
    at = start
    while at < end:
        head = at
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, at = _varint(data, at)
            body = head
        elif wire == 1:
            body, at = at, at + 8
        elif wire == _LENGTH_DELIMITED:
            size, body = _varint(data, at)
            at = body + size
        elif wire == 5:
            body, at = at, at + 4
        else:  # groups (3, 4) are not used by ONNX
            raise ValueError(f"wire type {wire}")
        if number == 0 or at > end:
            raise ValueError("truncated or invalid field")
        yield number, wire, head, body, at


def _varint(data: mmap.mmap | bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
