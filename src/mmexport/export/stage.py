"""The ``to-onnx`` stage: load, export, gate, (simplify, gate again), publish with a manifest."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from mmexport.errors import ParityError
from mmexport.export.loader import LoadedModel, load_model
from mmexport.export.onnx_export import ExportConfig, ExportInfo, export_onnx
from mmexport.export.parity import ParityConfig, ParityReport, run_parity
from mmexport.files import prepare_output, publish, sha256_file, staging_dir
from mmexport.manifest import Manifest, package_versions
from mmexport.spec import ModelSpec

Progress = Callable[[str], None]


@dataclass
class ToOnnxResult:
    path: Path
    manifest_path: Path
    manifest: Manifest
    parity: ParityReport
    simplified: bool
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def to_onnx(
    reference: str | None,
    output: str | Path,
    *,
    spec: ModelSpec | str | Path | None = None,
    export: ExportConfig | None = None,
    parity: ParityConfig | None = None,
    simplify: bool = False,
    progress: Progress | None = None,
) -> ToOnnxResult:
    """Export a model to ``output``; raise ParityError (writing nothing) if ONNX != PyTorch."""
    say = progress or (lambda _msg: None)
    export = export or ExportConfig()
    parity = parity or ParityConfig()
    output = prepare_output(output)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    loaded = load_model(reference, spec)
    seconds["load"] = time.perf_counter() - t0
    say(f"exporting {loaded.name} with torch.onnx ({export.exporter}, opset {export.opset})")
    with staging_dir(output) as stage:
        staged = stage / output.name
        t0 = time.perf_counter()
        info = export_onnx(loaded.module, loaded.spec, staged, export)
        seconds["export"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = run_parity(loaded.module, staged, loaded.spec, parity, say)
        seconds["parity"] = time.perf_counter() - t0
        if not report.passed:
            raise ParityError(_failure_message(report), report=report)
        notes: list[str] = []
        simplified = False
        if simplify:
            simplified, note = _try_simplify(loaded, staged, parity, say)
            notes.append(note)
            if simplified:
                report = run_parity(loaded.module, staged, loaded.spec, parity)
        manifest = _manifest(loaded, info, staged, output, report, simplified)
        companions = (f"{output.name}.data",) if info.external_data else ()
        publish(staged, output, companions=companions)
    manifest_file = manifest.write(output)
    return ToOnnxResult(output, manifest_file, manifest, report, simplified, notes, seconds)


def _failure_message(report: ParityReport) -> str:
    bad = report.failures
    worst = bad[0]
    what = worst.error or f"max abs diff {worst.max_abs:.3g}, max rel diff {worst.max_rel:.3g}"
    return (
        f"parity gate failed: ONNX differs from PyTorch in {len(bad)} of {len(report.rows)} "
        f"checks (first: output {worst.output!r} at {worst.point}: {what}); nothing written"
    )


def _try_simplify(loaded: LoadedModel, staged: Path, parity: ParityConfig, say: Progress) -> tuple[bool, str]:
    """Replace the staged graph by onnxslim's, only if that one passes the gate too."""
    import onnxslim

    say("simplifying with onnxslim")
    candidate = staged.with_name(f"simplified-{staged.name}")
    try:
        slim = onnxslim.slim(onnx.load(str(staged)))
        onnx.save(slim, str(candidate))
    except Exception as e:  # onnxslim raises plain exceptions on graphs it cannot handle
        return False, f"simplification skipped: onnxslim failed ({type(e).__name__}: {e})"
    report = run_parity(loaded.module, candidate, loaded.spec, parity)
    if not report.passed:
        candidate.unlink()
        return False, "simplification discarded: the simplified graph failed the parity gate"
    before, after = _node_count(staged), _node_count(candidate)
    candidate.replace(staged)
    return True, f"simplified with onnxslim: {before} -> {after} nodes"


def _node_count(path: Path) -> int:
    return len(onnx.load(str(path), load_external_data=False).graph.node)


def _manifest(
    loaded: LoadedModel,
    info: ExportInfo,
    staged: Path,
    output: Path,
    report: ParityReport,
    simplified: bool,
) -> Manifest:
    import mmexport

    versions = package_versions("torch", "onnx", "onnxruntime", "onnxslim")
    return Manifest(
        kind="onnx",
        artifact=output.name,
        sha256=sha256_file(staged),
        spec=loaded.spec,
        precision="fp32",
        source={"model": loaded.reference, "builtin": loaded.builtin},
        producer={
            "tool": "mmexport",
            "version": mmexport.__version__,
            "stage": "to-onnx",
            "exporter": info.exporter,
            "opset": info.opset,
            "external_data": f"{output.name}.data" if info.external_data else None,
            "simplified": simplified,
            "versions": versions,
        },
        validation={"parity": {"provider": "CPUExecutionProvider", **report.to_dict()}},
    )
