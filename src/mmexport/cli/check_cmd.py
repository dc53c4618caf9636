"""``mmexport check``: lint an ONNX model for a TensorRT target without TensorRT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mmexport.cli.options import ANY_PATH, json_option, spec_option, target_option
from mmexport.core.errors import MmexportError

if TYPE_CHECKING:
    from mmexport.core.spec import ModelSpec


@click.command("check")
@click.argument("model", type=click.Path(path_type=Path))
@target_option("Deployment target (its TensorRT release and DLA).", dest="target_name")
@click.option("--tensorrt-version", help="TensorRT release to check for (default: the target's first).")
@spec_option("Spec file for the dims' ranges (default: the model's manifest, if any).", ANY_PATH)
@json_option("Print the report as JSON on stdout.", errors=False)
def check_cmd(
    model: Path, target_name: str, tensorrt_version: str | None, spec_path: Path | None, as_json: bool
) -> None:
    """Check MODEL's ops, opset, Loops, RNN attributes, Q/DQ and DLA placement for a target.

    Reads onnx-tensorrt's published operator matrix for the target's TensorRT release. Exit code 1
    when TensorRT's parser would refuse the graph; warnings (e.g. DLA fallbacks) exit 0.
    """
    from mmexport.trt.check import check_onnx
    from mmexport.trt.targets import get_target

    report = check_onnx(
        model, get_target(target_name), spec=_spec(model, spec_path), tensorrt_version=tensorrt_version
    )
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.to_text())
    report.raise_for_errors()


def _spec(model: Path, spec_path: Path | None) -> ModelSpec | None:
    """The spec from --spec, else from the manifest beside the model, else None (graph dims only)."""
    from mmexport.core.manifest import read_manifest
    from mmexport.core.spec import ModelSpec

    if spec_path is not None:
        return ModelSpec.from_file(spec_path)
    try:
        manifest = read_manifest(model)
    except MmexportError:  # a foreign or broken manifest: check the graph alone
        return None
    return manifest.spec if manifest is not None else None
