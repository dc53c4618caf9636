"""Checks before the expensive stages: the data the later stages will read.

A missing or malformed ``--data`` would otherwise fail only after the export. Where the spec is
known without exporting (a built-in model, or ``--spec``), each source is opened and its first
batch read and checked against the spec; otherwise (a user model whose spec comes from its
module) at least a path must exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmexport.core.errors import DataError

if TYPE_CHECKING:
    from mmexport.core.spec import ModelSpec
    from mmexport.pipeline.config import PipelineConfig

SYNTHETIC = "synthetic"


def check_data(config: PipelineConfig) -> None:
    """Open ``--data`` and ``--eval-data`` and read one batch of each, or check that they exist."""
    spec, builtin = known_spec(config)
    for data, split in ((config.data, "calibration"), (config.eval_data, "evaluation")):
        if data is None:
            continue
        if spec is None:
            check_exists(data)
        else:
            read_first_batch(data, spec, builtin, split)


def known_spec(config: PipelineConfig) -> tuple[ModelSpec | None, str | None]:
    """The spec (from ``--spec`` or the built-in's entry) and the built-in's name, without torch."""
    from mmexport.core.spec import ModelSpec
    from mmexport.models import DEFAULT_MODEL, get_builtin

    reference = config.model or DEFAULT_MODEL
    builtin = None if ":" in reference or reference.endswith(".py") or "/" in reference else reference
    if config.spec is not None:
        return ModelSpec.from_file(config.spec), builtin
    if builtin is None:
        return None, None
    return get_builtin(builtin).spec, builtin


def read_first_batch(data: str, spec: ModelSpec, builtin: str | None, split: str) -> None:
    """Open ``data`` as the stages will and read its first batch (checked against the spec)."""
    from mmexport.data.sources import open_source

    source = open_source(data, spec, builtin=builtin, split=split, samples=1, batch_size=1)
    if next(iter(source.batches()), None) is None:
        raise DataError(f"{data!r} holds no samples")


def check_exists(data: str) -> None:
    """A path (or a ``file.py:make_feeds`` reference's file) must exist; module references pass."""
    if data == SYNTHETIC or Path(data).exists():
        return
    source, sep, _ = data.rpartition(":")
    if sep and not source.endswith(".py"):
        return  # package.module:make_feeds, checked when imported
    raise DataError(
        f"{source if sep else data!r} does not exist",
        hint="give a folder, a .npz file, 'synthetic', or file.py:make_feeds",
    )
