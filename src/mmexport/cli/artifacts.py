"""What kind of model a command was given: a split folder (``to-onnx --split``) or one model file.
Decided here once, so that every command that takes either treats them alike."""

from __future__ import annotations

from pathlib import Path

import click


def is_split_folder(model: Path, *, parts: str | None = None, spec_path: Path | None = None) -> bool:
    """Whether MODEL is a split folder; ``--parts`` is refused for a model file, ``--spec`` for a folder
    (its spec is in its composition.json)."""
    if model.is_dir():
        if spec_path is not None:
            raise click.UsageError(
                "--spec applies to an ONNX file; a split folder's spec is in its composition.json"
            )
        return True
    if parts is not None:
        raise click.UsageError("--parts applies to a split folder (to-onnx --split), not to an ONNX file")
    return False
