"""Damaged artifacts and manifests: each is one clear ``MmexportError`` (mostly ``ArtifactError``),
for the runtime, for the stages that read an FP32 ONNX, and on the command line; never a
protobuf, onnxruntime or OS traceback."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from mmexport.cli.app import cli
from mmexport.core.errors import ArtifactError, BackendError, MmexportError
from mmexport.core.files import sha256_file
from mmexport.core.manifest import Manifest, Producer, read_manifest
from mmexport.core.spec import ModelSpec
from mmexport.precision.common import load_source_model
from mmexport.runtime import Session
from reliability import budget
from reliability.damage import DAMAGES, flip_bit
from runtime.onnx_models import SPEC, feeds, tiny_graph
from trt.conftest import fake_cuda_fixture, fake_trt  # noqa: F401  (fixtures)
from trt.engines import feeds as engine_feeds
from trt.engines import write_engine

MANIFEST_DAMAGES = ("truncated-half", "truncated-10-bytes", "empty", "bit-flip", "folder", "dangling-link")


def copy_of(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in source.parent.glob(f"{source.name}*"):
        shutil.copy(path, folder / path.name)
    return folder / source.name


def loaders(path: Path) -> dict[str, object]:
    return {
        "Session": lambda: Session(path).run(feeds()),
        "Session(verify_sha256=True)": lambda: Session(path, verify_sha256=True).run(feeds()),
        "load_source_model (fp16, calibrate, build)": lambda: load_source_model(path),
    }


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_onnx_is_an_artifact_error_everywhere(
    tiny_graph_onnx: Path, tmp_path: Path, damage: str
) -> None:
    path = copy_of(tiny_graph_onnx, tmp_path)
    DAMAGES[damage](path)
    for name, load in loaders(path).items():
        if damage == "bit-flip" and name == "Session":  # see test_any_bit_flip_is_caught_by_sha256...
            continue
        with pytest.raises(ArtifactError, match=r"tiny\.onnx") as info:
            load()  # type: ignore[operator]
        budget.record(f"damaged onnx/{damage}", f"{name}: {type(info.value).__name__}")


@pytest.mark.parametrize("damage", MANIFEST_DAMAGES)
def test_damaged_manifest_is_an_artifact_error_everywhere(
    tiny_graph_onnx: Path, tmp_path: Path, damage: str
) -> None:
    path = copy_of(tiny_graph_onnx, tmp_path)
    DAMAGES[damage](Path(f"{path}.json"))
    for name, load in loaders(path).items():
        if damage == "bit-flip":  # may still be valid JSON with a valid spec: then only sha256 can tell
            try:
                load()  # type: ignore[operator]
                budget.record(f"damaged manifest/{damage}", f"{name}: loaded")
                continue
            except MmexportError as e:
                budget.record(f"damaged manifest/{damage}", f"{name}: {type(e).__name__}")
                continue
        with pytest.raises(ArtifactError, match=r"tiny\.onnx\.json") as info:
            load()  # type: ignore[operator]
        budget.record(f"damaged manifest/{damage}", f"{name}: {type(info.value).__name__}")


@budget.FUZZ
@given(position=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_any_bit_flip_is_caught_by_sha256_and_never_crashes(
    tiny_graph_onnx: Path, position: float, bit: int
) -> None:
    """Default Session: loads (a flipped weight can still parse: only the hash can tell) or one clear
    error. verify_sha256=True and the stages (which hash the file anyway) always refuse."""
    folder = tiny_graph_onnx.parent / f"flip-{position}-{bit}"
    path = copy_of(tiny_graph_onnx, folder)
    flip_bit(path, position, bit)
    printed = io.StringIO()
    try:
        try:
            with contextlib.redirect_stdout(printed):  # onnxruntime prints "EP Error" on retries
                Session(path).run(feeds())
            budget.record("bit flips/onnx", "Session: ran")
        except MmexportError as e:
            budget.record("bit flips/onnx", f"Session: {type(e).__name__}")
        assert printed.getvalue() == ""
        for name, load in list(loaders(path).items())[1:]:
            with pytest.raises(ArtifactError):
                load()  # type: ignore[operator]
            budget.record("bit flips/onnx", f"{name}: ArtifactError")
    finally:
        shutil.rmtree(folder)


def test_a_manifest_whose_sha256_does_not_match(tiny_graph_onnx: Path, tmp_path: Path) -> None:
    """By default Session does not hash the file (it would read all of it on every load): the manifest
    is trusted. verify_sha256=True refuses, and so do the stages, which hash their input anyway."""
    path = copy_of(tiny_graph_onnx, tmp_path)
    data = json.loads(Path(f"{path}.json").read_text())
    data["sha256"] = "0" * 64
    Path(f"{path}.json").write_text(json.dumps(data))
    Session(path).run(feeds())
    with pytest.raises(ArtifactError, match="does not match the sha256 in its manifest"):
        Session(path, verify_sha256=True)
    with pytest.raises(ArtifactError, match="does not match the sha256 in its manifest"):
        load_source_model(path)


def test_an_empty_onnx_without_a_graph_is_refused_by_the_stages(tmp_path: Path) -> None:
    """An empty file parses as an empty ModelProto; with --spec (no manifest to hash against)."""
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ArtifactError, match="has no graph"):
        load_source_model(path, spec=ModelSpec.from_dict(SPEC))


def external_data_model(folder: Path) -> Path:
    """The tiny graph plus one initializer kept in ``model.onnx.data``, as to-onnx writes big models."""
    model = tiny_graph()
    model.graph.initializer.append(numpy_helper.from_array(np.ones(4, np.float32), "w"))
    model.graph.node.append(helper.make_node("Identity", ["w"], ["w_out"]))
    model.graph.output.append(helper.make_tensor_value_info("w_out", TensorProto.FLOAT, [4]))
    path = folder / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="model.onnx.data", size_threshold=0)
    spec = ModelSpec.from_dict({**SPEC, "outputs": ["logits", "w_out"]})
    data = folder / "model.onnx.data"
    producer = Producer(details={"external_data": {"file": data.name, "sha256": sha256_file(data)}})
    Manifest("onnx", path.name, sha256_file(path), spec, "fp32", producer=producer).write(path)
    return path


def test_modified_external_data_is_caught_by_verify_sha256(tmp_path: Path) -> None:
    path = external_data_model(tmp_path)
    np.testing.assert_array_equal(Session(path, verify_sha256=True).run(feeds())["w_out"], np.ones(4))
    (tmp_path / "model.onnx.data").write_bytes(np.full(4, 7, np.float32).tobytes())
    with pytest.raises(ArtifactError, match=r"model\.onnx\.data: does not match the sha256"):
        Session(path, verify_sha256=True)
    with pytest.raises(ArtifactError, match=r"model\.onnx\.data: does not match the sha256"):
        load_source_model(path)


@pytest.mark.parametrize("damage", ["missing", "folder", "truncated-half"])
def test_damaged_external_data_names_the_data_file(tmp_path: Path, damage: str) -> None:
    path = external_data_model(tmp_path)
    data = tmp_path / "model.onnx.data"
    if damage == "missing":
        data.unlink()
    else:
        DAMAGES[damage](data)
    for name, load in loaders(path).items():
        with pytest.raises(ArtifactError, match=r"model\.onnx\.data") as info:
            load()  # type: ignore[operator]
        budget.record(f"external data/{damage}", f"{name}: {type(info.value).__name__}")


@pytest.mark.parametrize("damage", ["truncated-half", "empty", "bit-flip", "folder"])
def test_damaged_engine(tmp_path: Path, fake_trt, fake_cuda, damage: str) -> None:  # noqa: F811
    engine = write_engine(tmp_path, fake_trt)
    Session(engine).run(engine_feeds())
    DAMAGES[damage](engine)
    with pytest.raises((ArtifactError, BackendError), match=r"model\.engine") as info:
        Session(engine).run(engine_feeds())
    budget.record(f"damaged engine/{damage}", f"Session: {type(info.value).__name__}")
    if damage != "folder":
        with pytest.raises(ArtifactError, match="does not match the sha256"):
            Session(engine, verify_sha256=True)


@pytest.mark.parametrize("damage", MANIFEST_DAMAGES)
def test_damaged_engine_manifest(tmp_path: Path, fake_trt, fake_cuda, damage: str) -> None:  # noqa: F811
    engine = write_engine(tmp_path, fake_trt)
    DAMAGES[damage](Path(f"{engine}.json"))
    try:
        Session(engine).run(engine_feeds())
        outcome = "ran"
    except MmexportError as e:
        outcome = type(e).__name__
    assert outcome != "ran" or damage == "bit-flip"
    budget.record(f"damaged engine manifest/{damage}", f"Session: {outcome}")


def test_an_engine_manifest_from_a_newer_mmexport(tmp_path: Path, fake_trt, fake_cuda) -> None:  # noqa: F811
    engine = write_engine(tmp_path, fake_trt)
    manifest = Path(f"{engine}.json")
    manifest.write_text(manifest.read_text().replace('"format_version": 1', '"format_version": 2'))
    with pytest.raises(ArtifactError, match="format version 2; this mmexport reads up to 1"):
        Session(engine)


@pytest.mark.parametrize("damage", ["truncated-half", "empty", "folder"])
def test_damaged_files_on_the_command_line_are_one_line(
    tiny_graph_onnx: Path, tmp_path: Path, damage: str
) -> None:
    path = copy_of(tiny_graph_onnx, tmp_path / "m")
    DAMAGES[damage](path)
    np.savez(tmp_path / "feeds.npz", **feeds())
    for args in (
        ["run", str(path), "-i", str(tmp_path / "feeds.npz")],
        ["fp16", str(path), "-o", str(tmp_path / "out.onnx"), "--eval-samples", "0"],
        ["calibrate", str(path), "-o", str(tmp_path / "out.onnx"), "--eval-samples", "0"],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code in (1, 2), (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 or lines[-1].startswith("Error:"), (args, result.stderr)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert not (tmp_path / "out.onnx").exists()
        budget.record(f"damaged onnx on the command line/{damage}", f"{args[0]}: exit {result.exit_code}")


def test_newer_manifest_reads_as_upgrade_hint(tiny_graph_onnx: Path, tmp_path: Path) -> None:
    path = copy_of(tiny_graph_onnx, tmp_path)
    data = json.loads(Path(f"{path}.json").read_text())
    data["format_version"] = 2
    Path(f"{path}.json").write_text(json.dumps(data))
    for load in loaders(path).values():
        with pytest.raises(ArtifactError, match="upgrade mmexport"):
            load()  # type: ignore[operator]
    assert read_manifest(tiny_graph_onnx) is not None
