"""``mmexport triton``'s refusals, and that a failure or Ctrl-C leaves nothing behind.

Uses the hand-made ONNX of the runtime tests (milliseconds) with manifests written here.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from google.protobuf import json_format, text_format
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import model_config_pb2 as pb

from mmexport.cli.app import cli
from mmexport.core.errors import ArtifactError
from mmexport.core.files import sha256_file
from mmexport.core.manifest import Manifest
from mmexport.core.spec import ModelSpec
from mmexport.deploy.triton import triton_repository
from mmexport.deploy.triton_artifacts import read_artifacts
from mmexport.deploy.triton_model import TritonError, TritonOptions, default_name, make_model
from runtime.onnx_models import SPEC, tiny_graph, write_tiny

TINY_MODEL_FOLDER = ["tiny", "tiny/1", "tiny/1/model.onnx", "tiny/config.pbtxt", "tiny/model.onnx.json"]


def entries(folder: Path) -> list[str]:
    """Everything below ``folder`` (staging folders included), or [] when it does not exist."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


def edited(path: Path) -> Path:
    """``path`` changed after its manifest was written: same interface, another sha256."""
    model = onnx.load(str(path))
    model.graph.node[2].name = "renamed"
    onnx.save(model, str(path))
    return path


def with_spec(path: Path, spec: dict) -> Path:
    """The tiny graph with a manifest that declares ``spec``."""
    onnx.save(tiny_graph(), str(path))
    Manifest("onnx", path.name, sha256_file(path), ModelSpec.from_dict(spec), "fp32").write(path)
    return path


def test_max_batch_must_lie_in_the_spec_range(tmp_path: Path) -> None:
    artifacts = read_artifacts([write_tiny(tmp_path)])  # batch 1..8
    for edge in (1, 8):
        assert make_model(artifacts, TritonOptions(max_batch=edge)).config.max_batch_size == edge
    with pytest.raises(
        TritonError, match=r"--max-batch 9: outside the range of dim 'batch' in tiny\.onnx, 1\.\.8"
    ) as caught:
        make_model(artifacts, TritonOptions(max_batch=9))
    assert (caught.value.option, caught.value.expected, caught.value.actual) == ("--max-batch 9", (1, 8), 9)


def test_bad_option_values_are_refused_before_any_work() -> None:
    with pytest.raises(TritonError, match="--max-batch: must be >= 1, got 0"):
        TritonOptions(max_batch=0)
    with pytest.raises(TritonError, match=r"--name: '\.\./up' is not a usable model folder name"):
        TritonOptions(name="../up")
    for name in ("", ".", "..", "a/b", "-a", "a" * 201):  # 201: past what a file system takes with room
        with pytest.raises(TritonError, match=r"letters, digits, '_', '\.' and '-', at most 200"):
            TritonOptions(name=name)
    assert TritonOptions(name="a" * 200).name == "a" * 200
    with pytest.raises(TritonError, match="--fp16: sets the TensorRT accelerator; add --trt-accelerator"):
        TritonOptions(fp16=True)
    with pytest.raises(TritonError, match="--trt-accelerator: is a GPU accelerator"):
        TritonOptions(trt_accelerator=True, kind="cpu")


def test_without_a_shared_batch_dim_max_batch_size_is_0(tmp_path: Path) -> None:
    spec = json.loads(json.dumps(SPEC))
    spec["inputs"][1]["shape"] = ["rows", "seq"]  # tokens no longer lead with "batch"
    spec["dims"]["rows"] = {"min": 1, "opt": 3, "max": 4}
    artifacts = read_artifacts([with_spec(tmp_path / "rows.onnx", spec)])
    model = make_model(artifacts)
    config = text_format.Parse(model.config.to_pbtxt(), pb.ModelConfig())
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert {t.name: list(t.dims) for t in config.input} == {"image": [-1, 3, -1, -1], "tokens": [-1, -1]}
    assert {t.name: list(t.dims) for t in config.output} == {"logits": [-1, 4]}
    assert "--shape image:2,3,8,8 --shape tokens:3,5 --concurrency-range 1:4" in model.perf_analyzer
    assert "-b" not in model.perf_analyzer.split()
    with pytest.raises(
        TritonError, match=r"--max-batch 2: rows.onnx cannot batch: the inputs do not all lead"
    ):
        make_model(artifacts, TritonOptions(max_batch=2))
    with pytest.raises(TritonError, match="--dynamic-batching: needs a batch dim"):
        make_model(artifacts, TritonOptions(dynamic_batching=True))


def test_bare_onnx_uses_the_graph_and_needs_max_batch(tmp_path: Path) -> None:
    path = write_tiny(tmp_path, manifest=False)
    artifacts = read_artifacts([path])
    with pytest.raises(TritonError, match="has no manifest, so dim 'batch' has no known maximum"):
        make_model(artifacts)
    model = make_model(artifacts, TritonOptions(max_batch=16))
    assert model.config.max_batch_size == 16
    assert {t.name: t.dims for t in model.config.inputs} == {"image": (3, -1, -1), "tokens": (-1,)}
    assert model.files == {"1/model.onnx": path}  # no manifest to copy
    assert any("has no manifest" in n for n in model.notes)


def test_existing_model_folder_is_kept_unless_overwrite(tmp_path: Path) -> None:
    onnx_path = write_tiny(tmp_path)
    repo = tmp_path / "repo"
    triton_repository([onnx_path], repo, TritonOptions(max_batch=4))
    before = (repo / "tiny" / "config.pbtxt").read_text()
    with pytest.raises(ArtifactError, match="tiny: exists already"):
        triton_repository([onnx_path], repo, TritonOptions(max_batch=8))
    assert (repo / "tiny" / "config.pbtxt").read_text() == before
    result = triton_repository([onnx_path], repo, TritonOptions(max_batch=8), overwrite=True)
    assert result.replaced and "max_batch_size: 8" in (repo / "tiny" / "config.pbtxt").read_text()
    assert entries(repo) == TINY_MODEL_FOLDER


def test_missing_file_or_changed_artifact_writes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "new" / "repo"
    with pytest.raises(ArtifactError, match=r"missing\.onnx: does not exist"):
        triton_repository([tmp_path / "missing.onnx"], repo)
    changed = edited(write_tiny(tmp_path))
    with pytest.raises(ArtifactError, match="does not match the sha256 its manifest records"):
        triton_repository([changed], repo)
    assert not (tmp_path / "new").exists()  # not even the repository folder was left


def test_failed_overwrite_keeps_the_previous_model(tmp_path: Path) -> None:
    good = write_tiny(tmp_path)
    repo = tmp_path / "repo"
    triton_repository([good], repo, TritonOptions(name="m"))
    before = {p: (repo / p).read_bytes() for p in entries(repo) if (repo / p).is_file()}
    (tmp_path / "other").mkdir()
    changed = edited(write_tiny(tmp_path / "other"))
    with pytest.raises(ArtifactError, match="sha256"):
        triton_repository([changed], repo, TritonOptions(name="m"), overwrite=True)
    assert {p: (repo / p).read_bytes() for p in entries(repo) if (repo / p).is_file()} == before


def test_interrupt_before_publishing_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx_path = write_tiny(tmp_path)
    repo = tmp_path / "repo"
    interrupted = threading.Event()  # what the CLI's SIGINT handler sets
    interrupted.set()
    monkeypatch.setattr("mmexport.deploy.triton.INTERRUPTED", interrupted)
    with pytest.raises(KeyboardInterrupt):
        triton_repository([onnx_path], repo)
    assert not repo.exists()


def test_a_folder_made_meanwhile_is_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmexport.deploy import triton

    repo = tmp_path / "repo"
    stage = triton._stage

    def stage_then_race(model, folder):  # another run publishes the same name first
        sizes = stage(model, folder)
        (repo / "tiny").mkdir()
        (repo / "tiny" / "theirs.txt").write_text("kept")
        return sizes

    monkeypatch.setattr(triton, "_stage", stage_then_race)
    with pytest.raises(ArtifactError, match="appeared while this model was written"):
        triton_repository([write_tiny(tmp_path)], repo)
    assert entries(repo) == ["tiny", "tiny/theirs.txt"]


def with_score(path: Path, *, total: bool = False) -> Path:
    """y = x and s = sum(x) per sample ([n]; a scalar [] over the whole batch with ``total``)."""
    axes = numpy_helper.from_array(np.array([0, 1] if total else [1], np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["y"]),
            helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
        ],
        "score",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, [] if total else ["n"]),
        ],
        [axes],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    spec = {
        "inputs": [{"name": "x", "modality": "sensor", "dtype": "float32", "shape": ["n", 4]}],
        "outputs": ["y", "s"],
        "dims": {"n": {"min": 1, "opt": 2, "max": 4}},
    }
    Manifest("onnx", path.name, sha256_file(path), ModelSpec.from_dict(spec), "fp32").write(path)
    return path


def test_one_value_per_sample_is_dims_1_reshaped_to_nothing(tmp_path: Path) -> None:
    """Triton refuses empty dims ("must specify 'dims'"): [batch] is dims [1] with reshape { shape: [] }."""
    model = make_model(read_artifacts([with_score(tmp_path / "score.onnx")]))
    config = text_format.Parse(model.config.to_pbtxt(), pb.ModelConfig())
    assert config.max_batch_size == 4
    (y, s) = config.output
    assert list(y.dims) == [4] and not y.HasField("reshape")
    assert list(s.dims) == [1] and s.HasField("reshape") and list(s.reshape.shape) == []
    assert json_format.ParseDict(model.config.to_dict(), pb.ModelConfig()) == config
    with pytest.raises(ArtifactError, match=r"output 's' is a scalar, and the model has max_batch_size 0"):
        make_model(read_artifacts([with_score(tmp_path / "total.onnx", total=True)]))


@pytest.mark.parametrize("overwrite", [False, True])
def test_the_repository_never_holds_a_staging_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overwrite: bool
) -> None:
    """Triton loads every folder of its repository (hidden ones too): staging happens beside it."""
    from mmexport.deploy import triton

    repo = tmp_path / "repo"
    if overwrite:
        triton_repository([write_tiny(tmp_path)], repo)
    seen: list[list[str]] = []
    stage = triton._stage

    def stage_and_look(model, folder):  # what a polling Triton would find meanwhile
        sizes = stage(model, folder)
        seen.append(sorted(p.name for p in repo.iterdir()))
        return sizes

    monkeypatch.setattr(triton, "_stage", stage_and_look)
    triton_repository([write_tiny(tmp_path)], repo, overwrite=overwrite)
    assert seen == [["tiny"] if overwrite else []]
    assert entries(repo) == TINY_MODEL_FOLDER
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "tiny.onnx", "tiny.onnx.json"]


def test_a_repository_whose_parent_cannot_take_the_staging_folder_stages_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository that is a mount point (or under a read-only folder): rename works only inside it."""
    from mmexport.deploy import triton

    access = os.access
    monkeypatch.setattr(triton.os, "access", lambda path, mode: Path(path) != tmp_path and access(path, mode))
    result = triton_repository([write_tiny(tmp_path)], tmp_path / "repo")
    assert result.path == tmp_path / "repo" / "tiny"
    assert entries(tmp_path / "repo") == TINY_MODEL_FOLDER  # the staging folder is gone


def test_external_data_is_copied_and_the_copy_runs(tmp_path: Path) -> None:
    """y = x @ w with w in ext.onnx.data, as to-onnx writes models over 1.8 GB."""
    weights = np.arange(16, dtype=np.float32).reshape(4, 4)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(weights, "w")],
    )
    path = tmp_path / "ext.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path), save_as_external_data=True, size_threshold=0, location="ext.onnx.data")
    spec = {
        "inputs": [{"name": "x", "modality": "sensor", "dtype": "float32", "shape": ["n", 4]}],
        "outputs": ["y"],
        "dims": {"n": {"min": 1, "opt": 2, "max": 4}},
    }
    Manifest("onnx", path.name, sha256_file(path), ModelSpec.from_dict(spec), "fp32").write(path)
    result = triton_repository([path], tmp_path / "repo")
    assert set(result.sizes) == {"1/model.onnx", "1/ext.onnx.data", "config.pbtxt", "model.onnx.json"}
    session = ort.InferenceSession(str(result.path / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x @ weights)
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(ArtifactError, match=r"keeps its weights in ext\.onnx\.data, which is missing"):
        read_artifacts([path])


def test_cli_error_lines(tmp_path: Path) -> None:
    path = write_tiny(tmp_path)
    result = CliRunner().invoke(
        cli, ["triton", str(path), "--repo", str(tmp_path / "r"), "--max-batch", "64"]
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --max-batch 64: outside the range of dim 'batch' in tiny.onnx, 1..8 (the ONNX was checked "
        "against PyTorch, and engines are built, for that range only)"
    )
    mixed = CliRunner().invoke(
        cli, ["triton", str(path), str(tmp_path / "x.engine"), "--repo", str(tmp_path / "r")]
    )
    assert mixed.exit_code == 1 and "x.engine: does not exist" in mixed.stderr
    assert not (tmp_path / "r").exists()


def test_default_names() -> None:
    assert default_name([Path("fusion.fp16.onnx")]) == "fusion_fp16"
    assert default_name([Path("a/model.orin.engine"), Path("b/model.thor.engine")]) == "model"
    assert default_name([Path("x.8.7.engine"), Path("y.9.0.engine")]) == "x_8_7"
