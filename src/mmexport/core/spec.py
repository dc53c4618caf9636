"""The ModelSpec: inputs, named dims and outputs, declared once and read by every stage.

The JSON form (``ModelSpec.from_dict`` / ``to_dict``) is the spec file users write::

    {"inputs": [{"name": "image", "modality": "image", "dtype": "float32",
                 "shape": ["batch", 3, "height", "width"]}, ...],
     "outputs": ["logits"],
     "dims": {"batch": {"min": 1, "opt": 4, "max": 32}, ...}}

Extensions, all optional: ``range`` ([low, high)) on integer inputs, ``preprocess`` on inputs,
``mask_of`` (this input is the attention mask of that token input), and outputs written as
objects (``{"name": "logits", "labels": [...], "atol": 1e-4, "rtol": 1e-3}``).
This module needs numpy only. The vocabulary (modalities, dtypes, keys) is in ``spec_schema``,
the checks run on construction in ``spec_checks``, the ``preprocess`` schema in ``preprocess_spec``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.errors import SpecError
from mmexport.core.preprocess_spec import PREPROCESS_KINDS
from mmexport.core.spec_checks import MAX_DIM, check_call_kwargs, validate_spec
from mmexport.core.spec_feeds import random_feed
from mmexport.core.spec_schema import (
    DIM_KEYS,
    DTYPES,
    FLOAT_DTYPES,
    INPUT_KEYS,
    INT_DTYPES,
    MODALITIES,
    OUTPUT_KEYS,
    SPEC_KEYS,
    is_int,
    no_unknown_keys,
    parse_spec_json,
)

Shape = tuple[int, ...]
CallValue = str | int | float | bool | None
"""A constant argument of forward() (``call_kwargs``): a JSON scalar."""
ShapePoint = dict[str, int]
"""A value for every named dim, e.g. ``{"batch": 4, "seq": 16}``."""


@dataclass(frozen=True)
class DimSpec:
    """A named dim with its optimization range: ``min <= opt <= max``."""

    name: str
    min: int
    opt: int
    max: int

    @property
    def dynamic(self) -> bool:
        return self.min != self.max

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}


@dataclass(frozen=True)
class InputSpec:
    """One model input: its modality, dtype and shape of ints and named dims."""

    name: str
    modality: str
    dtype: str
    shape: tuple[int | str, ...]
    range: tuple[int, int] | None = None
    preprocess: Mapping[str, Any] | None = None
    mask_of: str | None = None
    """The token input this one is the attention mask of: generated feeds pad that input at the
    end to random lengths and set this mask to 1 on real tokens, 0 on padding."""

    @property
    def pad_id(self) -> int | None:
        """The id that pads this token input: ``preprocess.pad``, None when not declared."""
        pad = (self.preprocess or {}).get("pad")
        return pad if isinstance(pad, int) else None

    @property
    def dim_names(self) -> list[str]:
        return [d for d in self.shape if isinstance(d, str)]

    def concrete_shape(self, point: Mapping[str, int]) -> Shape:
        """The shape with every named dim replaced by its value in ``point``."""
        return tuple(point[d] if isinstance(d, str) else d for d in self.shape)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "modality": self.modality,
            "dtype": self.dtype,
            "shape": list(self.shape),
        }
        if self.range is not None:
            out["range"] = list(self.range)
        if self.preprocess is not None:
            out["preprocess"] = dict(self.preprocess)
        if self.mask_of is not None:
            out["mask_of"] = self.mask_of
        return out


@dataclass(frozen=True)
class OutputSpec:
    """One model output; optional class labels and parity tolerances."""

    name: str
    labels: tuple[str, ...] | None = None
    atol: float | None = None
    rtol: float | None = None
    shape: tuple[int | str | None, ...] | None = None
    """Optional: its dims, as ints, names from ``dims`` or null (not known before it runs). The
    first dim named like an input's batch dim is the output's sample axis in accuracy reports
    (CLIP's ``logits_per_text``: ``["texts", "images"]``); without one, the whole output is one
    sample. Without ``shape`` the sample axis is found from the batch sizes."""

    def to_dict(self) -> str | dict[str, Any]:
        if self.labels is None and self.atol is None and self.rtol is None and self.shape is None:
            return self.name
        out: dict[str, Any] = {"name": self.name}
        if self.shape is not None:
            out["shape"] = list(self.shape)
        if self.labels is not None:
            out["labels"] = list(self.labels)
        if self.atol is not None:
            out["atol"] = self.atol
        if self.rtol is not None:
            out["rtol"] = self.rtol
        return out


@dataclass(frozen=True)
class ModelSpec:
    """Inputs, outputs and named dims of a model; validated on construction."""

    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    dims: Mapping[str, DimSpec] = field(default_factory=dict)
    call_kwargs: Mapping[str, CallValue] = field(default_factory=dict)
    """Constant keyword arguments of every call of forward(), e.g. ``{"use_cache": False}``."""

    def __post_init__(self) -> None:
        validate_spec(self)
        check_call_kwargs(self.call_kwargs)

    # -- reading and writing -------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        """Build a spec from its JSON form, with errors that name the offending entry."""
        if isinstance(data, ModelSpec):
            return data
        if not isinstance(data, Mapping):
            raise SpecError(f"expected a JSON object, got {type(data).__name__}")
        no_unknown_keys(data, SPEC_KEYS, "top level")
        for key in ("inputs", "outputs"):
            if key not in data:
                raise SpecError(f"missing {key!r}", where="top level")
        dims_data = data.get("dims", {})
        if not isinstance(dims_data, Mapping):
            raise SpecError("'dims' must be an object of name -> {min, opt, max}")
        dims = {name: _parse_dim(name, value) for name, value in dims_data.items()}
        if not isinstance(data["inputs"], list) or not data["inputs"]:
            raise SpecError("'inputs' must be a non-empty list")
        if not isinstance(data["outputs"], list) or not data["outputs"]:
            raise SpecError("'outputs' must be a non-empty list")
        inputs = tuple(_parse_input(i, item) for i, item in enumerate(data["inputs"]))
        outputs = tuple(_parse_output(i, item) for i, item in enumerate(data["outputs"]))
        call_kwargs = data.get("call_kwargs", {})
        if not isinstance(call_kwargs, Mapping):
            raise SpecError("'call_kwargs' must be an object of parameter name -> JSON scalar")
        return cls(inputs=inputs, outputs=outputs, dims=dims, call_kwargs=dict(call_kwargs))

    @classmethod
    def from_json(cls, text: str, *, source: str = "spec") -> ModelSpec:
        return cls.from_dict(parse_spec_json(text, source=source))

    @classmethod
    def from_file(cls, path: str | Path) -> ModelSpec:
        """The spec in a JSON file, read as untrusted input: at most ``MAX_SPEC_FILE_BYTES``
        (read that far and no further, since the file may grow), UTF-8 with or without a BOM."""
        path = Path(path)
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_SPEC_FILE_BYTES + 1)
            if len(raw) > MAX_SPEC_FILE_BYTES:
                raise SpecError(
                    f"spec file {str(path)!r} is larger than {MAX_SPEC_FILE_BYTES >> 20} MiB "
                    "(a spec is a few KiB)",
                    hint="is this the right file?",
                )
            text = raw.decode("utf-8-sig")
        except FileNotFoundError:
            raise SpecError(f"spec file {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            raise SpecError(f"spec file {str(path)!r} cannot be read: {e}") from e
        return cls.from_json(text, source=f"spec file {str(path)!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as users write it (and as stored in every manifest under ``spec``)."""
        return {
            "inputs": [i.to_dict() for i in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
            "dims": {name: d.to_dict() for name, d in self.dims.items()},
            **({"call_kwargs": dict(self.call_kwargs)} if self.call_kwargs else {}),
        }

    # -- lookups -------------------------------------------------------------------------

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def input(self, name: str) -> InputSpec:
        for i in self.inputs:
            if i.name == name:
                return i
        raise KeyError(name)

    def sample_axis_of(self, output: str) -> int | None:
        """The sample axis the spec declares for ``output``: the first dim of its ``shape`` that
        is an input's batch dim (the named dim at axis 0 of an input); None when none is. Raises
        KeyError when the output declares no ``shape``."""
        spec = next((o for o in self.outputs if o.name == output), None)
        if spec is None or spec.shape is None:
            raise KeyError(output)
        batch = {i.shape[0] for i in self.inputs if i.shape and isinstance(i.shape[0], str)}
        return next((axis for axis, d in enumerate(spec.shape) if isinstance(d, str) and d in batch), None)

    def mask_for(self, name: str) -> InputSpec | None:
        """The input declared as the mask of input ``name`` (``mask_of``), if any."""
        return next((i for i in self.inputs if i.mask_of == name), None)

    def padding_id(self, name: str) -> int | None:
        """The id that pads token input ``name``: its ``preprocess.pad``, else 0 when a mask is
        declared for it, else None (the input is not padded)."""
        pad = self.input(name).pad_id
        return 0 if pad is None and self.mask_for(name) is not None else pad

    def input_keys(self) -> dict[str, str]:
        """Names that pick an input in data files and on the command line -> the input's name:
        every input's name, and its modality when no other input has that modality."""
        modalities = [i.modality for i in self.inputs]
        keys = {i.modality: i.name for i in self.inputs if modalities.count(i.modality) == 1}
        keys.update({i.name: i.name for i in self.inputs})
        return keys

    @property
    def dynamic_dims(self) -> list[DimSpec]:
        return [d for d in self.dims.values() if d.dynamic]

    # -- shape points --------------------------------------------------------------------

    def point(self, which: str) -> ShapePoint:
        """The ``"min"``, ``"opt"`` or ``"max"`` corner: every dim at that value."""
        if which not in DIM_KEYS:
            raise ValueError(f"which must be min, opt or max, not {which!r}")
        return {name: getattr(d, which) for name, d in self.dims.items()}

    def example_point(self) -> ShapePoint:
        """The opt point with every dynamic dim at least 2, so that tracing does not specialize it."""
        return {n: max(d.opt, 2) if d.dynamic else d.opt for n, d in self.dims.items()}

    def random_points(self, count: int, seed: int = 0) -> list[ShapePoint]:
        """``count`` points drawn uniformly (per dim) inside the ranges, reproducibly."""
        rng = np.random.default_rng(seed)
        return [{n: int(rng.integers(d.min, d.max + 1)) for n, d in self.dims.items()} for _ in range(count)]

    def shapes(self, point: Mapping[str, int]) -> dict[str, Shape]:
        return {i.name: i.concrete_shape(point) for i in self.inputs}

    def sample_feed(self, point: Mapping[str, int], seed: int = 0) -> dict[str, np.ndarray]:
        """Random, valid inputs at ``point``: normal floats, integers inside each input's range."""
        return random_feed(self, point, seed)


# -- parsing ----------------------------------------------------------------------------

MAX_SPEC_FILE_BYTES = 16 << 20
"""A spec file larger than this is refused before it is read (specs are a few KiB)."""


def _parse_dim(name: str, value: Any) -> DimSpec:
    where = f"dim {name!r}"
    if not isinstance(value, Mapping):
        raise SpecError(f"expected an object with min, opt, max, got {value!r}", where=where)
    no_unknown_keys(value, DIM_KEYS, where)
    missing = [k for k in ("min", "opt", "max") if k not in value]
    if missing:
        raise SpecError(f"missing {', '.join(missing)}", where=where)
    for k in ("min", "opt", "max"):
        if not is_int(value[k]) or value[k] < 1:
            raise SpecError(f"{k} must be an integer >= 1, got {value[k]!r}", where=where)
    return DimSpec(name, value["min"], value["opt"], value["max"])


def _parse_input(index: int, item: Any) -> InputSpec:
    where = f"inputs[{index}]"
    if not isinstance(item, Mapping):
        raise SpecError(f"expected an object, got {item!r}", where=where)
    if isinstance(item.get("name"), str):
        where = f"input {item['name']!r}"
    no_unknown_keys(item, INPUT_KEYS, where)
    for key in ("name", "modality", "dtype", "shape"):
        if key not in item:
            raise SpecError(f"missing {key!r}", where=where)
    if not isinstance(item["name"], str) or not item["name"]:
        raise SpecError(f"name must be a non-empty string, got {item['name']!r}", where=where)
    shape = item["shape"]
    if not isinstance(shape, list):
        raise SpecError(f"shape must be a list of ints and dim names, got {shape!r}", where=where)
    rng = item.get("range")
    if rng is not None:
        ok = isinstance(rng, list) and len(rng) == 2 and all(is_int(v) for v in rng)
        if not ok:
            raise SpecError(f"range must be [low, high) of two integers, got {rng!r}", where=where)
        rng = (rng[0], rng[1])
    pre = item.get("preprocess")
    if pre is not None and not isinstance(pre, Mapping):
        raise SpecError(f"preprocess must be an object, got {pre!r}", where=where)
    mask_of = item.get("mask_of")
    if mask_of is not None and not isinstance(mask_of, str):
        raise SpecError(f"mask_of must be the name of a token input, got {mask_of!r:.60}", where=where)
    return InputSpec(
        name=item["name"],
        modality=item["modality"],
        dtype=item["dtype"],
        shape=tuple(shape),
        range=rng,
        preprocess=pre,
        mask_of=mask_of,
    )


MAX_OUTPUT_RANK = 32


def _parse_output(index: int, item: Any) -> OutputSpec:
    where = f"outputs[{index}]"
    if isinstance(item, str):
        return OutputSpec(item)
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise SpecError(f"expected a name or an object with 'name', got {item!r}", where=where)
    where = f"output {item['name']!r}"
    no_unknown_keys(item, OUTPUT_KEYS, where)
    labels = item.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
        raise SpecError(f"labels must be a list of strings, got {labels!r}", where=where)
    for key in ("atol", "rtol"):
        v = item.get(key)
        finite = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf
        if v is not None and not finite:
            raise SpecError(f"{key} must be a finite number >= 0, got {v!r}", where=where)
    shape = item.get("shape")
    ok = isinstance(shape, list) and len(shape) <= MAX_OUTPUT_RANK
    if shape is not None and not (
        ok and all(x is None or isinstance(x, str) or (type(x) is int and 1 <= x <= MAX_DIM) for x in shape)
    ):
        raise SpecError(
            f"shape must be a list of at most {MAX_OUTPUT_RANK} dims (ints >= 1, dim names or null), "
            f"got {repr(shape)[:80]}",
            where=where,
        )
    return OutputSpec(
        name=item["name"],
        labels=tuple(labels) if labels is not None else None,
        atol=item.get("atol"),
        rtol=item.get("rtol"),
        shape=tuple(shape) if shape is not None else None,
    )


__all__ = [
    "DTYPES",
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "MODALITIES",
    "PREPROCESS_KINDS",
    "CallValue",
    "DimSpec",
    "InputSpec",
    "ModelSpec",
    "OutputSpec",
    "Shape",
    "ShapePoint",
]
