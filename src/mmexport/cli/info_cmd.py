"""``mmexport inspect`` and ``mmexport models``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mmexport.cli.options import json_option


@click.command("inspect")
@click.argument("artifact", type=click.Path(path_type=Path))
@json_option()
def inspect_cmd(artifact: Path, as_json: bool) -> None:
    """Show an artifact's inputs (modalities, dynamic ranges), outputs, precision and ops.

    Reads the graph and, where present, the manifest beside it (ARTIFACT.json), and checks the
    file's sha256 against the manifest.
    """
    from mmexport.core.inspection import format_inspection, inspect_artifact

    info = inspect_artifact(artifact)
    click.echo(json.dumps(info, indent=2) if as_json else format_inspection(info))


@click.command("models")
@json_option()
def models_cmd(as_json: bool) -> None:
    """List the built-in models (the first is the default)."""
    from mmexport.models import DEFAULT_MODEL, builtin_names, get_builtin

    rows: list[dict[str, Any]] = []
    for name in builtin_names():
        entry = get_builtin(name)
        spec = entry.spec
        rows.append(
            {
                "name": name,
                "default": name == DEFAULT_MODEL,
                "description": entry.description,
                "inputs": {i.name: i.modality for i in spec.inputs},
                "outputs": spec.output_names,
                "spec": spec.to_dict(),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        mark = " (default)" if r["default"] else ""
        inputs = ", ".join(f"{n}:{m}" for n, m in r["inputs"].items())
        click.echo(f"{r['name']}{mark}\n  {r['description']}")
        click.echo(f"  inputs  {inputs}\n  outputs {', '.join(r['outputs'])}")
