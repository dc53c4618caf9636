"""The text files of a bundle: ``build.sh``, ``README.txt``, ``requirements.txt``, ``SHA256SUMS``.

``build.sh`` builds every engine with ``mmexport build --target <trt target>`` where mmexport is
installed, else with trtexec, spelling out the flags of the target's TensorRT generation:
TensorRT 10 builds weakly typed unless told ``--stronglyTyped`` (the network ``mmexport build``
makes: precision from the ONNX, FP16 and Q/DQ INT8 as they are); TensorRT 11 is always strongly
typed and has no ``--fp16``/``--int8`` builder flags. Shapes are the spec's min/opt/max corners,
the workspace is the target's cap (``--memPoolSize=workspace:<MiB>``, trtexec's unit).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence

from mmexport.core.spec import ModelSpec
from mmexport.deploy.bundle_artifacts import BundledArtifact
from mmexport.deploy.bundle_targets import BundleTarget
from mmexport.trt.trtexec import trtexec_command

TRTEXEC_JETSON = "/usr/src/tensorrt/bin/trtexec"  # where JetPack installs trtexec (not on PATH)
TIMING_CACHE = "engines/timing.cache"


def shape_flags(spec: ModelSpec) -> list[str]:
    """``--minShapes/--optShapes/--maxShapes`` from the spec's corners; none for a static spec."""
    if not any(d.dynamic for d in spec.dims.values()):
        return []
    flags = []
    for corner in ("min", "opt", "max"):
        shapes = spec.shapes(spec.point(corner))
        text = ",".join(f"{name}:{'x'.join(str(d) for d in shape)}" for name, shape in shapes.items())
        flags.append(f"--{corner}Shapes={text}")
    return flags


def trtexec_build_flags(artifact: BundledArtifact, target: BundleTarget) -> list[str]:
    """The trtexec flags (after --onnx and --saveEngine) that build what ``mmexport build`` would."""
    flags = ["--stronglyTyped"] if target.generation < 11 else []
    flags += shape_flags(artifact.spec)
    workspace = target.engine_target.workspace_bytes
    if workspace is not None:
        flags.append(f"--memPoolSize=workspace:{workspace >> 20}")
    return flags


def _q(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


def build_script(target: BundleTarget, artifacts: Sequence[BundledArtifact], header: str) -> str:
    """``build.sh``: ``set -euo pipefail``, checks SHA256SUMS, builds each engine into engines/."""
    trt = target.trt_target
    mmexport_lines = [
        "  "
        + _q("mmexport", "build", a.name, "--target", trt, "-o", a.engine_name(trt))
        + " "
        + _q("--timing-cache", TIMING_CACHE)
        for a in artifacts
    ]
    trtexec_lines = [
        "  " + _q("build_with_trtexec", a.name, a.engine_name(trt), *trtexec_build_flags(a, target))
        for a in artifacts
    ]
    generation_note = (
        "TensorRT 10: --stronglyTyped keeps the ONNX's precision (FP16 / Q/DQ INT8), as mmexport build does"
        if target.generation < 11
        else "TensorRT 11: always strongly typed (no --fp16/--int8 builder flags); precision from the ONNX"
    )
    lines = [
        "#!/usr/bin/env bash",
        f"# Build the TensorRT engines of this bundle on the device itself ({target.name}).",
        f"# {header}",
        "#",
        "# Usage: bash build.sh             mmexport build where mmexport is installed, else trtexec",
        "#        bash build.sh --trtexec   always trtexec",
        "# Engines go to engines/. Each build takes minutes on a Jetson.",
        "set -euo pipefail",
        'cd "$(dirname -- "${BASH_SOURCE[0]}")"',
        "",
        "use_trtexec=0",
        'case "${1:-}" in',
        '  "") ;;',
        "  --trtexec) use_trtexec=1 ;;",
        '  -h | --help) sed -n "2,8p" "$0"; exit 0 ;;',
        '  *) echo "build.sh: unknown option $1 (only --trtexec)" >&2; exit 2 ;;',
        "esac",
        "",
        "if command -v sha256sum >/dev/null 2>&1; then",
        '  echo "checking every file against SHA256SUMS" >&2',
        "  sha256sum --check --quiet --strict SHA256SUMS",
        "else",
        '  echo "sha256sum not found: files not checked" >&2',
        "fi",
        "mkdir -p engines",
        "",
        "build_with_trtexec() {  # ONNX ENGINE FLAGS...",
        "  local onnx=$1 engine=$2",
        "  shift 2",
        '  echo "trtexec: $onnx -> $engine" >&2',
        '  rm -f "$engine.partial"',
        '  "$trtexec" --onnx="$onnx" --saveEngine="$engine.partial" --skipInference "$@"',
        '  mv -f "$engine.partial" "$engine"',
        "}",
        "",
        "if [[ $use_trtexec -eq 0 ]] && command -v mmexport >/dev/null 2>&1; then",
        '  echo "building with $(command -v mmexport) for target ' + trt + '" >&2',
        *mmexport_lines,
        "else",
        f"  # {generation_note}.",
        "  # Engines built by trtexec have no mmexport manifest: run them with trtexec, or rebuild them",
        "  # with mmexport build for mmexport.runtime.",
        "  trtexec=$(command -v trtexec || true)",
        f"  if [[ -z $trtexec && -x {TRTEXEC_JETSON} ]]; then",
        f"    trtexec={TRTEXEC_JETSON}",
        "  fi",
        "  if [[ -z $trtexec ]]; then",
        '    echo "neither mmexport nor trtexec found: install mmexport (README.txt)" \\',
        '      "or put trtexec on PATH" >&2',
        "    exit 1",
        "  fi",
        f'  echo "building with $trtexec (TensorRT {target.generation} flags)" >&2',
        *trtexec_lines,
        "fi",
        *_implicit_int8_comment(target, artifacts),
        'echo "engines are in engines/; next: see README.txt (run, benchmark)" >&2',
        "",
    ]
    return "\n".join(lines)


def _implicit_int8_comment(target: BundleTarget, artifacts: Sequence[BundledArtifact]) -> list[str]:
    """TensorRT 10 only: the FP32 model plus the native cache, built as implicit INT8 (an option)."""
    if target.generation >= 11:
        return []
    names = {a.path.name: a for a in artifacts}
    lines = []
    for artifact in artifacts:
        cache = artifact.companion("calibration-cache")
        source = names.get(artifact.source_onnx or "")
        if cache is None or source is None:
            continue
        engine = f"engines/{source.path.stem}.implicit-int8.{target.trt_target}.engine"
        lines += [
            f"# TensorRT 10 alternative to the Q/DQ {artifact.name}: implicit INT8 from the FP32 model and",
            "# the native calibration cache (deprecated by TensorRT since 10.1; removed in 11):",
            "#   "
            + _q("mmexport", "build", source.name, "--precision", "int8", "--int8-calib", cache.name)
            + " "
            + _q("--target", target.trt_target, "-o", engine),
        ]
    return lines


def requirements_text(target: BundleTarget, header: str) -> str:
    lines = [
        f"# Python packages for {target.name}: {target.description}",
        f"# TensorRT {target.tensorrt} ({target.tensorrt_install}),",
        f"# CUDA {target.cuda}, Python {target.python}.",
        f"# {header}",
        f"# Create the environment first: {target.venv}",
        *target.requirements,
    ]
    return "\n".join(lines) + "\n"


def readme_text(
    target: BundleTarget,
    artifacts: Sequence[BundledArtifact],
    header: str,
    archive_name: str,
) -> str:
    trt = target.trt_target
    folder = next(
        (archive_name[: -len(s)] for s in (".tar.gz", ".tgz") if archive_name.endswith(s)), archive_name
    )
    models = []
    for a in artifacts:
        cache = a.companion("calibration-cache")
        extra = f" (calibration cache {cache.name})" if cache is not None else ""
        models.append(f"  {a.name:<34} {a.precision:<5} -> {a.engine_name(trt)}{extra}")
    first = artifacts[0]
    opt_shapes = first.spec.shapes(first.spec.point("opt"))
    bench_line = trtexec_command(first.engine_name(trt), first.spec, opt_shapes, target.generation)
    archive, folder, engine = (shlex.quote(name) for name in (archive_name, folder, first.engine_name(trt)))
    in_python = json.dumps(first.engine_name(trt))
    session_code = f"from mmexport.runtime import Session; s = Session({in_python}); print(s.spec)"
    unverified = f"Not verified on a device: {', '.join(target.unverified)}." if target.unverified else ""
    text = f"""mmexport bundle for {target.name}: {target.description}
TensorRT {target.tensorrt} ({target.tensorrt_install}), CUDA {target.cuda}, Python {target.python}
{header}
{unverified}
Models (ONNX here; engines are built on the device by build.sh):
{chr(10).join(models)}

1. Unpack, checking every file's sha256
     mmexport unbundle {archive} -o {folder}
   or without mmexport:
     mkdir {folder} && tar -xzf {archive} -C {folder} && cd {folder} && sha256sum -c SHA256SUMS

2. Python environment (in the unpacked folder)
     {target.venv}
     . .venv/bin/activate
     pip install -r requirements.txt
     pip install --no-deps <mmexport wheel or source folder>   (optional: build.sh falls back to trtexec)
     python3 -c "import tensorrt; print(tensorrt.__version__)"   (expect {target.tensorrt})

3. Build the engines
     bash build.sh              (mmexport build --target {trt}; trtexec when mmexport is missing)
     bash build.sh --trtexec

4. Run (engines built by mmexport build; feeds as .npy/.npz/image/text/wav files)
     mmexport run {engine} -i NAME=FILE ...
     python3 -c {shlex.quote(session_code)}

5. Benchmark
     mmexport bench {engine} --cuda-graph
     {bench_line}
"""
    notes = "".join(f"   - {note}\n" for note in target.notes)
    return text + notes


def checksums_text(hashes: Mapping[str, str]) -> str:
    """``sha256sum -c`` input: ``<hash>  <name>`` per file (two spaces: text mode)."""
    return "".join(f"{digest}  {name}\n" for name, digest in hashes.items())
