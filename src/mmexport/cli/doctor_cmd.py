"""``mmexport doctor``: what this machine can do, and what to install for the rest."""

from __future__ import annotations

import json

import click

from mmexport.cli.options import json_option


@click.command("doctor")
@json_option()
def doctor_cmd(as_json: bool) -> None:
    """Show TensorRT, CUDA, GPU, DLA, onnxruntime, torch and Jetson state, and what is missing.

    Never fails: every probe is bounded in time and absence is reported, not raised.
    """
    from mmexport.bench.doctor import diagnose, format_diagnosis

    diagnosis = diagnose()
    click.echo(json.dumps(diagnosis.to_dict(), indent=2) if as_json else format_diagnosis(diagnosis))
