"""The composition manifest of a split export: ``<folder>/composition.json``.

A split export is a folder with one ONNX per part (each with its own manifest) and this file,
which says how the parts compose into the model::

    {"format": "mmexport.split.composition", "format_version": 1, "created": "...",
     "source": {"model": "fusion", "builtin": true},
     "spec": {...the model's spec...},
     "parts": [
       {"name": "image", "role": "encoder", "file": "image.onnx", "sha256": "...", "precision": "fp32",
        "inputs": {"image": {"input": "image"}}, "outputs": ["image_tokens"],
        "absent": {"kind": "mask"}},
       {"name": "fuse", "role": "fusion", "file": "fuse.onnx", ...,
        "inputs": {"image_tokens": {"part": "image", "output": "image_tokens"},
                   "image_present": {"present": "image"}, ...},
        "outputs": ["logits"], "absent": null}],
     "outputs": {"logits": {"part": "fuse", "output": "logits"}},
     "producer": {...}, "validation": {...}}

Wiring: each part input comes from a model input (``{"input": NAME}``), another part's output
(``{"part": PART, "output": NAME}``) or a presence flag (``{"present": PART}``: bool [batch],
False when that part's inputs were absent). ``absent`` declares what a part's absence means:
``{"kind": "mask"}`` (its outputs are fed as zeros and its presence flags False; the consumer
masks them out) or ``{"kind": "constant", "values": {OUTPUT: {"dtype", "shape", "data"}}}`` (one
sample's null embedding, repeated along the batch); ``null``: the part must be present.

numpy only: the runtime reads this file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.errors import ArtifactError, SpecError
from mmexport.core.files import atomic_write_text, sha256_file, utc_now
from mmexport.core.json_limits import check_format, dumps_finite, read_json_limited
from mmexport.core.spec import DTYPES, ModelSpec
from mmexport.split.composition_wiring import check_wiring, part_levels

FORMAT = "mmexport.split.composition"
FORMAT_VERSION = 1
FILE_NAME = "composition.json"
ROLES = ("encoder", "fusion")
PRECISIONS = ("fp32", "fp16", "int8")
ABSENT_KINDS = ("mask", "constant")
MAX_BYTES = 16 << 20
WHAT = "an mmexport composition manifest"
KEYS = frozenset(
    {"format", "format_version", "created", "source", "spec", "parts", "outputs", "producer", "validation"}
)
PART_KEYS = frozenset({"name", "role", "file", "sha256", "precision", "inputs", "outputs", "absent"})
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Wire:
    """Where a part input comes from: a model input, a part output, or a part's presence flag."""

    kind: str  # "input", "part" or "present"
    name: str  # the model input, or the part
    output: str | None = None  # with kind "part"

    def to_dict(self) -> dict[str, str]:
        if self.kind == "part":
            return {"part": self.name, "output": self.output or ""}
        return {self.kind: self.name}

    def __str__(self) -> str:
        return f"{self.name}.{self.output}" if self.kind == "part" else f"{self.kind} {self.name!r}"


@dataclass
class Absent:
    """What a part's absence means: ``mask`` (zeros + presence flags False) or ``constant``."""

    kind: str
    values: dict[str, np.ndarray] = field(default_factory=dict)  # constant: one sample per output

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "mask":
            return {"kind": "mask"}
        values = {
            name: {"dtype": v.dtype.name, "shape": list(v.shape), "data": v.reshape(-1).tolist()}
            for name, v in self.values.items()
        }
        return {"kind": "constant", "values": values}


@dataclass
class Part:
    name: str
    role: str
    file: str
    sha256: str
    precision: str
    inputs: dict[str, Wire]
    outputs: list[str]
    absent: Absent | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "file": self.file,
            "sha256": self.sha256,
            "precision": self.precision,
            "inputs": {k: w.to_dict() for k, w in self.inputs.items()},
            "outputs": list(self.outputs),
            "absent": self.absent.to_dict() if self.absent is not None else None,
        }

    @property
    def model_inputs(self) -> list[str]:
        """The model inputs this part reads."""
        return [w.name for w in self.inputs.values() if w.kind == "input"]


@dataclass
class Composition:
    """How the parts of a split export compose into the model (see the module docstring)."""

    spec: ModelSpec
    parts: list[Part]
    outputs: dict[str, Wire]
    source: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=utc_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": self.created,
            "source": self.source,
            "spec": self.spec.to_dict(),
            "parts": [p.to_dict() for p in self.parts],
            "outputs": {k: w.to_dict() for k, w in self.outputs.items()},
            "producer": self.producer,
            "validation": self.validation,
        }

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / FILE_NAME
        atomic_write_text(path, dumps_finite(self.to_dict()))
        return path

    def part(self, name: str) -> Part:
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def precisions(self) -> dict[str, str]:
        return {p.name: p.precision for p in self.parts}

    def levels(self) -> list[list[str]]:
        """Parts in dependency order, grouped so that the parts of one level need none of each
        other (they may run concurrently)."""
        return part_levels(self.parts, where=FILE_NAME)

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> Composition:
        """Parse and check structure and wiring; errors name the field."""
        check_format(data, where, name=FORMAT, newest=FORMAT_VERSION, what=WHAT)
        _known_keys(data, KEYS, "", where)
        try:
            spec = ModelSpec.from_dict(_field(data, "spec", Mapping, where))
        except SpecError as e:
            raise ArtifactError(where, f"field 'spec' is invalid: {e}") from e
        raw_parts = _field(data, "parts", list, where)
        if not raw_parts:
            raise ArtifactError(where, "field 'parts' is empty")
        parts = [_parse_part(i, p, where) for i, p in enumerate(raw_parts)]
        names = [p.name for p in parts]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ArtifactError(where, f"field 'parts[{i}].name': part {name!r} appears twice")
        raw_outputs = _field(data, "outputs", Mapping, where)
        outputs = {k: _parse_wire(v, f"outputs.{k}", where) for k, v in raw_outputs.items()}
        composition = cls(
            spec=spec,
            parts=parts,
            outputs=outputs,
            source=dict(_optional(data, "source", Mapping, {}, where)),
            producer=dict(_optional(data, "producer", Mapping, {}, where)),
            validation=dict(_optional(data, "validation", Mapping, {}, where)),
            created=_optional(data, "created", str, "", where),
        )
        check_wiring(composition, where)
        return composition


def read_composition(folder: str | Path, *, verify_files: bool = True) -> Composition:
    """Read and check ``folder/composition.json`` (as untrusted input: size, nesting, numbers and
    duplicate keys are limited); with ``verify_files``, every part file must exist and match its
    sha256 (reads each file once)."""
    folder = Path(folder)
    path = folder / FILE_NAME if folder.is_dir() else folder
    if not path.exists() and not path.is_symlink():
        raise ArtifactError(
            str(path),
            "does not exist",
            hint="a split export folder from `mmexport to-onnx --split -o FOLDER`",
        )
    if path.suffix.lower() in (".onnx", ".engine", ".plan"):  # a model file where a split folder belongs
        raise ArtifactError(
            str(path),
            "is a model file, not a split export folder",
            hint=(
                "use mmexport.runtime.Session for one model; "
                "SplitSession takes a folder from `to-onnx --split`"
            ),
        )
    data = read_json_limited(path, what=WHAT, max_bytes=MAX_BYTES)
    composition = Composition.from_dict(data, where=str(path))
    if verify_files:
        for i, part in enumerate(composition.parts):
            file = path.parent / part.file
            if not file.is_file():
                raise ArtifactError(
                    str(path), f"field 'parts[{i}].file': part {part.name!r} file {part.file!r} is missing"
                )
            if sha256_file(file) != part.sha256:
                raise ArtifactError(
                    str(path),
                    f"field 'parts[{i}].sha256': part {part.name!r} file {part.file!r} does not match "
                    "its sha256 (modified or replaced since export)",
                )
    return composition


def is_composition_folder(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / FILE_NAME).is_file()


# -- parsing ------------------------------------------------------------------------------


def _known_keys(data: Mapping[str, Any], known: frozenset[str], at: str, where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ArtifactError(
            where,
            f"unknown field '{at}{unknown[0]}' (format version {FORMAT_VERSION} has "
            f"{', '.join(sorted(known))})",
        )


def _field(data: Mapping[str, Any], key: str, kind: type, where: str, prefix: str = "") -> Any:
    if key not in data:
        raise ArtifactError(where, f"field '{prefix}{key}' is missing")
    return _typed(data[key], kind, f"{prefix}{key}", where)


def _optional(data: Mapping[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    return _typed(data[key], kind, key, where) if key in data else default


def _typed(value: Any, kind: type, at: str, where: str) -> Any:
    if not isinstance(value, kind):
        raise ArtifactError(where, f"field '{at}' must be a {_KIND_NAMES[kind]}, got {value!r:.60}")
    return value


_KIND_NAMES: dict[type, str] = {Mapping: "JSON object", list: "list", str: "string"}


def _parse_part(index: int, data: Any, where: str) -> Part:
    at = f"parts[{index}]."
    _typed(data, Mapping, f"parts[{index}]", where)
    _known_keys(data, PART_KEYS, at, where)
    name = _field(data, "name", str, where, at)
    role = _choice(_field(data, "role", str, where, at), ROLES, f"{at}role", where)
    sha256 = _field(data, "sha256", str, where, at)
    if not _SHA256.fullmatch(sha256):
        raise ArtifactError(where, f"field '{at}sha256' must be 64 lowercase hex digits, got {sha256!r:.80}")
    raw_inputs = _field(data, "inputs", Mapping, where, at)
    outputs = _field(data, "outputs", list, where, at)
    if not outputs or not all(isinstance(o, str) and o for o in outputs):
        raise ArtifactError(where, f"field '{at}outputs' must be a non-empty list of names")
    repeated = next((o for i, o in enumerate(outputs) if o in outputs[:i]), None)
    if repeated is not None:
        raise ArtifactError(where, f"field '{at}outputs' names {repeated!r} twice")
    absent = data.get("absent")
    return Part(
        name=name,
        role=role,
        file=_file_name(_field(data, "file", str, where, at), f"{at}file", where),
        sha256=sha256,
        precision=_choice(_field(data, "precision", str, where, at), PRECISIONS, f"{at}precision", where),
        inputs={k: _parse_wire(v, f"{at}inputs.{k}", where) for k, v in raw_inputs.items()},
        outputs=list(outputs),
        absent=None if absent is None else _parse_absent(absent, f"{at}absent", where),
    )


def _choice(value: str, allowed: tuple[str, ...], at: str, where: str) -> str:
    if value not in allowed:
        raise ArtifactError(where, f"field '{at}' is {value!r:.60}; expected one of {', '.join(allowed)}")
    return value


def _file_name(name: str, at: str, where: str) -> str:
    """A part file is a bare name in the composition's folder: never a path out of it."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ArtifactError(where, f"field '{at}' must be a file name without a folder, got {name!r}")
    return name


def _parse_wire(data: Any, at: str, where: str) -> Wire:
    is_part = isinstance(data, Mapping) and set(data) == {"part", "output"}
    if is_part and isinstance(data["part"], str) and isinstance(data["output"], str):
        return Wire("part", data["part"], data["output"])
    if isinstance(data, Mapping) and len(data) == 1:
        ((kind, name),) = data.items()
        if kind in ("input", "present") and isinstance(name, str):
            return Wire(kind, name)
    raise ArtifactError(
        where,
        f'field \'{at}\' is {data!r:.80}; expected {{"input": NAME}}, {{"part": PART, "output": NAME}} '
        'or {"present": PART}',
    )


def _parse_absent(data: Any, at: str, where: str) -> Absent:
    _typed(data, Mapping, at, where)
    _known_keys(data, frozenset({"kind", "values"}), f"{at}.", where)
    kind = _choice(_field(data, "kind", str, where, f"{at}."), ABSENT_KINDS, f"{at}.kind", where)
    if kind == "mask":
        return Absent("mask")
    values = _field(data, "values", Mapping, where, f"{at}.")
    return Absent(
        "constant", {name: _parse_array(v, f"{at}.values.{name}", where) for name, v in values.items()}
    )


def _parse_array(data: Any, at: str, where: str) -> np.ndarray:
    """``{"dtype", "shape", "data"}``: a dtype of the spec's, a shape of non-negative sizes, and
    exactly that many numbers."""
    if not isinstance(data, Mapping) or set(data) != {"dtype", "shape", "data"}:
        raise ArtifactError(where, f"field '{at}' is not {{dtype, shape, data}} of matching size")
    dtype, shape, flat = data["dtype"], data["shape"], data["data"]
    if dtype not in DTYPES:
        raise ArtifactError(
            where, f"field '{at}' has dtype {dtype!r:.40}; expected one of {', '.join(DTYPES)}"
        )
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ArtifactError(where, f"field '{at}' has shape {shape!r:.60}; expected a list of sizes >= 0")
    try:
        array = np.asarray(flat, dtype=np.dtype(dtype))
        if not isinstance(flat, list) or array.ndim != 1:
            raise ValueError("data is not a flat list of numbers")
        return array.reshape(shape)
    except (TypeError, ValueError, OverflowError) as e:
        raise ArtifactError(
            where, f"field '{at}' is not {{dtype, shape, data}} of matching size ({e})"
        ) from e


__all__ = [
    "FILE_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "PRECISIONS",
    "Absent",
    "Composition",
    "Part",
    "Wire",
    "is_composition_folder",
    "read_composition",
]
