"""Resolve a model reference to a ``torch.nn.Module`` and its ModelSpec.

A reference is a built-in name (``fusion``), ``package.module:factory`` or
``path/to/file.py:factory``. Loading a user reference RUNS THAT USER'S CODE (the module is
imported and the factory called): only load files you trust.

A user model's spec comes from ``--spec`` or, when that is omitted, from the factory's module:
a module-level ``MMEXPORT_SPEC`` (a dict in the spec file's form, or a ModelSpec), or a
function ``mmexport_spec()`` returning one.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from mmexport.core.errors import ModelLoadError, SpecError
from mmexport.core.references import ReferenceNotFound, exited, get_attribute, import_source
from mmexport.core.spec import ModelSpec
from mmexport.models import DEFAULT_MODEL, get_builtin

SPEC_ATTRIBUTE = "MMEXPORT_SPEC"
SPEC_FUNCTION = "mmexport_spec"


@dataclass
class LoadedModel:
    """A model ready to export: the module in eval mode, its spec and where it came from."""

    name: str
    reference: str
    module: torch.nn.Module
    spec: ModelSpec
    builtin: bool


def load_model(
    reference: str | torch.nn.Module | None = None,
    spec: ModelSpec | Mapping[str, Any] | str | Path | None = None,
) -> LoadedModel:
    """Load ``reference`` (default: the default built-in) and check its spec against forward().

    ``reference`` is a built-in name, ``pkg.mod:factory``, ``file.py:factory``, or (from Python)
    a ``torch.nn.Module`` instance, which needs ``spec``."""
    reference = reference or DEFAULT_MODEL
    if isinstance(spec, (str, Path)):
        spec = ModelSpec.from_file(spec)
    elif isinstance(spec, Mapping):  # the JSON form, as a dict
        spec = ModelSpec.from_dict(spec)
    if isinstance(reference, torch.nn.Module):
        name = type(reference).__name__
        if spec is None:
            raise ModelLoadError(f"<{name} instance>", "a module passed directly needs spec=")
        loaded = LoadedModel(name, f"<{name} instance>", reference, spec, builtin=False)
    elif not isinstance(reference, str):
        raise ModelLoadError(
            repr(reference)[:60],
            f"expected a model reference string or a torch.nn.Module, got {type(reference).__name__}",
        )
    elif ":" not in reference:
        if reference.endswith(".py") or "/" in reference:
            raise ModelLoadError(
                reference, "names a file but no factory", hint=f"write {reference}:FACTORY_FUNCTION"
            )
        entry = get_builtin(reference)
        module = entry.build(pretrained=True)
        loaded = LoadedModel(entry.name, reference, module, spec or entry.spec, builtin=True)
    else:
        source, _, attr = reference.rpartition(":")
        py_module = _import_source(reference, source)
        factory = _get_factory(reference, py_module, attr)
        module = _call_factory(reference, factory)
        spec = spec or _spec_from_module(reference, py_module)
        loaded = LoadedModel(attr, reference, module, spec, builtin=False)
    loaded.module.eval()
    check_signature(loaded.module, loaded.spec)
    return loaded


def _import_source(reference: str, source: str) -> ModuleType:
    try:
        return import_source(source)
    except ReferenceNotFound as e:
        raise ModelLoadError(reference, e.message, hint=e.hint) from e


def _get_factory(reference: str, module: ModuleType, attr: str) -> Any:
    try:
        return get_attribute(module, attr, what="factory")
    except ReferenceNotFound as e:
        raise ModelLoadError(reference, e.message, hint=e.hint) from e


def _call_factory(reference: str, factory: Any) -> torch.nn.Module:
    if isinstance(factory, torch.nn.Module):
        return factory
    if not callable(factory):
        raise ModelLoadError(reference, f"is a {type(factory).__name__}, not a callable factory")
    try:
        module = factory()
    except SystemExit as e:
        error = exited("the factory", e)
        raise ModelLoadError(reference, error.message, hint=error.hint) from e
    except Exception as e:
        raise ModelLoadError(reference, f"the factory raised {type(e).__name__}: {e}") from e
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(
            reference, f"the factory returned a {type(module).__name__}, not a torch.nn.Module"
        )
    return module


def _spec_from_module(reference: str, module: ModuleType) -> ModelSpec:
    if hasattr(module, SPEC_ATTRIBUTE):
        return _as_spec(getattr(module, SPEC_ATTRIBUTE))
    if callable(getattr(module, SPEC_FUNCTION, None)):
        return _as_spec(getattr(module, SPEC_FUNCTION)())
    raise ModelLoadError(
        reference,
        "has no spec",
        hint=f"pass --spec spec.json, or define {SPEC_ATTRIBUTE} or {SPEC_FUNCTION}() in its module",
    )


def _as_spec(value: Any) -> ModelSpec:
    return value if isinstance(value, ModelSpec) else ModelSpec.from_dict(value)


def check_signature(module: torch.nn.Module, spec: ModelSpec) -> None:
    """forward() must take every spec input by name (a named parameter, or through ``**kwargs``),
    and every parameter without a default must be a spec input or one of the spec's ``call_kwargs``."""
    try:
        params = _signature(module).parameters
    except (TypeError, ValueError):
        return  # no introspectable signature (a compiled module): the export will tell
    model = type(module).__name__
    named = {n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    _refuse_container_forward(module, spec, named, takes_kwargs)
    unknown = [n for n in spec.input_names if n not in named]
    if unknown and not takes_kwargs:
        variadic = [n for n, p in params.items() if p.kind is p.VAR_POSITIONAL]
        if variadic:
            raise SpecError(
                f"{model}.forward takes *{variadic[0]}: the spec's inputs cannot be matched to it by name",
                hint=f"wrap it in a module whose forward is ({', '.join(spec.input_names)}) "
                "and calls the model with them",
            )
        raise SpecError(
            f"input {unknown[0]!r} is not a parameter of {model}.forward",
            hint=f"forward takes ({', '.join(params)})",
        )
    for name in spec.call_kwargs:
        if name in spec.input_names:
            raise SpecError(f"{name!r} is both an input and a constant", where="call_kwargs")
        if name not in named and not takes_kwargs:
            raise SpecError(
                f"{name!r} is not a parameter of {model}.forward",
                where="call_kwargs",
                hint=f"forward takes ({', '.join(params)})",
            )
    given = {*spec.input_names, *spec.call_kwargs}
    required = [n for n, p in named.items() if p.default is inspect.Parameter.empty]
    missing = [n for n in required if n not in given]
    if missing:
        raise SpecError(
            f"{model}.forward needs {missing[0]!r}, which the spec does not declare",
            hint=f"spec inputs: {', '.join(spec.input_names)}",
        )


def _signature(module: torch.nn.Module) -> inspect.Signature:
    """forward()'s signature, with string annotations resolved where they can be."""
    try:
        return inspect.signature(module.forward, eval_str=True)
    except Exception:  # an annotation naming what its module cannot resolve
        return inspect.signature(module.forward)


def _refuse_container_forward(
    module: torch.nn.Module, spec: ModelSpec, named: dict[str, inspect.Parameter], takes_kwargs: bool
) -> None:
    """A forward(batch) taking one dict or dataclass cannot be fed tensors by name: say so, with
    the wrapper that can."""
    required = [p for p in named.values() if p.default is inspect.Parameter.empty]
    if len(required) != 1:
        return
    param = required[0]
    if param.name in spec.call_kwargs:
        return
    unmatched = not takes_kwargs and not any(n in named for n in spec.input_names)
    if not _is_container(param.annotation) and not (unmatched and len(spec.inputs) > 1):
        return
    names = spec.input_names
    batch = ", ".join(f'"{n}": {n}' for n in names)
    raise SpecError(
        f"{type(module).__name__}.forward takes one container ({param.name}); it must take the spec's "
        f"inputs ({', '.join(names)}) as tensor parameters",
        hint="export a wrapper:\n"
        "class Wrapped(torch.nn.Module):\n"
        "    def __init__(self, model): super().__init__(); self.model = model\n"
        f"    def forward(self, {', '.join(names)}): return self.model({{{batch}}})",
    )


def _is_container(annotation: Any) -> bool:
    """An annotation naming a dict, a Mapping or a dataclass (as an object or as a string)."""
    if annotation is inspect.Parameter.empty:
        return False
    if isinstance(annotation, str):
        head = annotation.split("[", 1)[0].rsplit(".", 1)[-1].strip()
        return head in {"dict", "Dict", "Mapping", "MutableMapping", "TypedDict"}
    origin = typing.get_origin(annotation) or annotation
    if dataclasses.is_dataclass(origin):
        return True
    return isinstance(origin, type) and issubclass(origin, Mapping)


def forward_order(module: torch.nn.Module, spec: ModelSpec) -> list[str]:
    """Spec input names in the order of forward()'s parameters (the order export passes them)."""
    try:
        params = list(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return spec.input_names
    if not all(n in params for n in spec.input_names):
        return spec.input_names
    return sorted(spec.input_names, key=params.index)


__all__ = ["LoadedModel", "check_signature", "forward_order", "load_model"]
