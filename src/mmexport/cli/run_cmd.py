"""``mmexport run``: feed files to an artifact and show (or save) its outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from mmexport.cli.options import FILE, SessionChoice, json_option, output_option, session_options

if TYPE_CHECKING:
    from mmexport.runtime import Session


def _parse_input(value: str) -> tuple[str | None, Path]:
    name, sep, file = value.partition("=")
    if not sep:
        return None, Path(value)
    if not name or not file:
        raise click.BadParameter(f"{value!r} is not NAME=FILE", param_hint="--input")
    return name, Path(file)


@click.command("run")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option(
    "-i",
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME=FILE",
    help="An input's file: .npy, .npz, or an image / text / wav file read as the spec's preprocess says. "
    "A bare .npz gives every input by name. Repeat for each input.",
)
@output_option("Save every output to this .npz.", FILE)
@click.option(
    "-k", "--top-k", type=click.IntRange(1), default=5, show_default=True, help="Labels shown per row."
)
@session_options
@click.option(
    "--cuda-graph",
    is_flag=True,
    help="Run as a captured CUDA graph (--device cuda: onnxruntime's CUDA provider, or TensorRT engines).",
)
@json_option("Print the outputs (values and top-k) as JSON.")
def run_cmd(
    artifact: Path,
    inputs: tuple[str, ...],
    output: Path | None,
    top_k: int,
    session: SessionChoice,
    cuda_graph: bool,
    as_json: bool,
) -> None:
    """Run ARTIFACT on input files and print its outputs (top-k labels where the spec has labels).

    \b
    Examples:
      mmexport run model.onnx -i image=cat.png -i tokens=question.txt -i audio=tone.wav
      mmexport run model.onnx -i feeds.npz -o outputs.npz
    """
    from mmexport.data.feed_files import read_feeds, summarize_outputs
    from mmexport.runtime.validation import non_finite_inputs

    opened = _open(artifact, session, cuda_graph)
    feeds = read_feeds([_parse_input(v) for v in inputs], opened.spec)
    bad_inputs = non_finite_inputs(feeds)  # an INT8 model's outputs need not show them
    outputs = opened.run(feeds)
    if output is not None:
        _save(output, outputs)
    summary = summarize_outputs(outputs, opened.outputs, top_k)
    warning = _input_warning(bad_inputs)
    if as_json:
        payload: dict[str, Any] = {"artifact": str(artifact), "outputs": summary}
        bad = [name for name, entry in summary.items() if entry.get("non_finite")]
        notes = [f"non-finite values (NaN, inf) in {', '.join(bad)} are written as null"] if bad else []
        if warning:
            notes.append(warning)
        if bad_inputs:
            payload["non_finite_inputs"] = bad_inputs
        if notes:
            payload["notes"] = notes
        click.echo(json.dumps(payload, indent=2, allow_nan=False))
        return
    if warning:
        click.echo(f"WARNING: {warning}", err=True)
    for name, entry in summary.items():
        click.echo(_format_output(name, entry, outputs[name]))
    if output is not None:
        click.echo(f"wrote {output}")


def _open(artifact: Path, session: SessionChoice, cuda_graph: bool) -> Session:
    """The artifact opened as the session options say, with CUDA graphs when asked."""
    if not cuda_graph:
        return session.open(artifact)
    from mmexport.runtime import Session

    return Session(
        artifact,
        session.backend,
        session.device,
        provider=session.provider,
        threads=session.threads,
        options={"cuda_graph": True},
    )


def _input_warning(counts: dict[str, int]) -> str | None:
    """One line naming the inputs that hold NaN or inf, or None."""
    if not counts:
        return None
    listed = ", ".join(f"{name!r} ({n})" for name, n in counts.items())
    return (
        f"non-finite input values (NaN, inf) in {listed}: the outputs are not meaningful, "
        "even where they look finite (an INT8 model can turn NaN into a confident answer)"
    )


def _save(path: Path, outputs: dict[str, np.ndarray]) -> None:
    """Through the atomic writer: a full disk or a killed run leaves an earlier file whole."""
    from mmexport.core.errors import ArtifactError
    from mmexport.core.files import atomic_writer

    try:
        savez: Any = np.savez  # numpy's stubs type **kwds as its own keyword arguments
        with atomic_writer(path) as f:
            savez(f, **outputs)
    except OSError as e:
        raise ArtifactError(str(path), f"cannot be written: {e.strerror}") from e


def _format_output(name: str, entry: dict[str, Any], value: np.ndarray) -> str:
    shape = "x".join(str(d) for d in entry["shape"])
    lines = [f"{name}  {entry['dtype']} [{shape}]"]
    if entry.get("non_finite"):
        lines[0] += f"  WARNING: {entry['non_finite']} non-finite value(s) (NaN or inf)"
    if "top_k" in entry:
        shown = max(len(best) for best in entry["top_k"])
        lines[0] += f"  top {shown} labels per row, with probability"
        for row, best in enumerate(entry["top_k"]):
            items = ", ".join(f"{b['label']} {b['probability']:.3f}" for b in best)
            lines.append(f"  [{row}] {items or 'not ranked: non-finite scores'}")
    else:
        with np.printoptions(precision=4, threshold=20, edgeitems=3):
            lines.append("  " + np.array2string(value).replace("\n", "\n  "))
    return "\n".join(lines)


__all__ = ["run_cmd"]
