"""Resolve a model reference to a ``torch.nn.Module`` and its ModelSpec.

A reference is a built-in name (``fusion``), ``package.module:factory`` or
``path/to/file.py:factory``. Loading a user reference RUNS THAT USER'S CODE (the module is
imported and the factory called): only load files you trust.

A user model's spec comes from ``--spec`` or, when that is omitted, from the factory's module:
a module-level ``MMEXPORT_SPEC`` (a dict in the spec file's form, or a ModelSpec), or a
function ``mmexport_spec()`` returning one.
"""

from __future__ import annotations

import inspect
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
    reference: str | torch.nn.Module | None = None, spec: ModelSpec | str | Path | None = None
) -> LoadedModel:
    """Load ``reference`` (default: the default built-in) and check its spec against forward().

    ``reference`` is a built-in name, ``pkg.mod:factory``, ``file.py:factory``, or (from Python)
    a ``torch.nn.Module`` instance, which needs ``spec``."""
    reference = reference or DEFAULT_MODEL
    if isinstance(spec, (str, Path)):
        spec = ModelSpec.from_file(spec)
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
    """The spec's inputs must be exactly forward()'s parameters (those without defaults at least)."""
    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return  # no introspectable signature (a compiled module): the export will tell
    variadic = [n for n, p in params.items() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if variadic:
        inputs = ", ".join(spec.input_names)
        raise SpecError(
            f"{type(module).__name__}.forward takes *{variadic[0]}: the spec's inputs cannot be matched "
            "to it by name",
            hint=f"wrap it in a module whose forward is ({inputs}) and calls the model with them",
        )
    names = list(params)
    unknown = [n for n in spec.input_names if n not in params]
    if unknown:
        raise SpecError(
            f"input {unknown[0]!r} is not a parameter of {type(module).__name__}.forward",
            hint=f"forward takes ({', '.join(names)})",
        )
    required = [n for n, p in params.items() if p.default is inspect.Parameter.empty]
    missing = [n for n in required if n not in spec.input_names]
    if missing:
        raise SpecError(
            f"{type(module).__name__}.forward needs {missing[0]!r}, which the spec does not declare",
            hint=f"spec inputs: {', '.join(spec.input_names)}",
        )


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
