from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mmexport.core.errors import ExportError, FrozenDimError, ParityError, SpecError
from mmexport.core.manifest import read_manifest, verify_sha256
from mmexport.core.spec import ModelSpec
from mmexport.export import ExportConfig, ParityConfig, to_onnx
from mmexport.export.onnx_export import dim_values, normalize_dims
from tiny_models import TINY_SPEC


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    from conftest import TINY_FILE

    notes, logger = _Notes(), logging.getLogger("mmexport")
    level = logger.level
    logger.addHandler(notes)
    logger.setLevel(logging.INFO)
    try:
        result = to_onnx(f"{TINY_FILE}:tiny", out)
    finally:
        logger.removeHandler(notes)
        logger.setLevel(level)
    return result, notes.messages


class _Notes(logging.Handler):
    """The stage's notes: INFO records of the mmexport loggers (what the CLI prints)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_export_writes_onnx_and_manifest(exported):
    result, messages = exported
    assert result.path.is_file() and result.manifest_path.name == "tiny.onnx.json"
    manifest = read_manifest(result.path)
    assert manifest is not None
    assert manifest.spec.to_dict()["dims"] == TINY_SPEC["dims"]
    assert verify_sha256(result.path, manifest)
    producer = manifest.producer.details
    assert producer["exporter"] == "dynamo" and producer["opset"] == 18
    versions = manifest.producer.versions or {}
    assert versions["torch"] and versions["onnxruntime"]
    assert manifest.validation.parity["passed"] is True
    assert any(m.startswith("parity max") for m in messages)
    # nothing left over from staging
    assert sorted(p.name for p in result.path.parent.iterdir()) == ["tiny.onnx", "tiny.onnx.json"]


def test_every_dynamic_dim_is_symbolic_and_named(exported):
    result, _ = exported
    assert dim_values(result.path) == {
        "image": ["batch", 3, "height", "width"],
        "tokens": ["batch", "seq"],
        "imu": ["batch", "steps", 6],
    }
    model = onnx.load(str(result.path))
    assert model.opset_import[0].version == 18
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def test_parity_checks_each_corner_once_by_default(exported):
    result, messages = exported
    rows = result.parity.rows
    points = {r.point: r.shapes for r in rows}
    assert result.parity.points == ["opt", "min", "max"]  # no random points unless asked
    assert points["min"]["image"] == [1, 3, 8, 8] and points["max"]["imu"] == [4, 20, 6]
    assert all(r.passed and r.max_abs < 1e-4 for r in rows)
    assert "parity gate at 3 shape points: opt, min, max (--parity-points to change)" in messages


def test_parity_points_name_corners_and_random_points():
    from mmexport.core.errors import ConfigError
    from mmexport.core.spec import ModelSpec
    from mmexport.export.parity import parse_points, shape_points

    assert parse_points("opt,min,max") == (("opt", "min", "max"), 0)
    assert parse_points("opt, 2") == (("opt",), 2)
    assert parse_points("4") == ((), 4)
    spec = ModelSpec.from_dict(TINY_SPEC)
    corners, random = parse_points("max,opt,3")
    names = [n for n, _ in shape_points(spec, ParityConfig(random_points=random, corners=corners))]
    assert names == ["max", "opt", "random-1", "random-2", "random-3"]
    for bad in ("opt,middle", "0", ""):
        with pytest.raises(ConfigError, match="parity"):
            parse_points(bad)


def test_parity_progress_counts_points_and_estimates_the_rest(tmp_path, caplog):
    from conftest import TINY_FILE
    from mmexport.export.parity import _estimate, feed_elements

    calls: list[tuple[int, int | None]] = []
    config = ParityConfig(corners=("min", "opt"))
    with caplog.at_level(logging.INFO, logger="mmexport"):
        result = to_onnx(
            f"{TINY_FILE}:tiny",
            tmp_path / "t.onnx",
            export=ExportConfig(exporter="torchscript"),
            parity=config,
            progress=lambda done, total=None: calls.append((done, total)),
        )
    assert result.parity.points == ["min", "opt"]
    assert calls == [(0, 2), (1, 2), (2, 2)]
    assert feed_elements({"a": [2, 3], "b": [4]}) == 10
    assert _estimate((2.0, 10), 50) == " (about 10 s or more)"  # scaled by feed size
    assert _estimate(None, 50) == ""


@pytest.mark.slow
def test_a_model_that_computes_something_else_when_exported_is_refused(tmp_path):
    from conftest import TINY_FILE

    out = tmp_path / "cheat.onnx"
    with pytest.raises(ParityError) as info:
        to_onnx(f"{TINY_FILE}:cheater", out, parity=ParityConfig(random_points=0))
    assert "parity gate failed" in str(info.value) and "nothing written" in str(info.value)
    assert info.value.report.failures
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_failed_export_keeps_the_previous_good_artifact(exported, tmp_path):
    from conftest import TINY_FILE

    good, _ = exported
    out = tmp_path / "model.onnx"
    out.write_bytes(good.path.read_bytes())
    (tmp_path / "model.onnx.json").write_text(good.manifest_path.read_text())
    with pytest.raises(ParityError):
        to_onnx(f"{TINY_FILE}:cheater", out, parity=ParityConfig(random_points=0))
    assert out.read_bytes() == good.path.read_bytes()
    assert verify_sha256(out, read_manifest(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.json"]


@pytest.mark.slow
def test_frozen_dim_is_named(tmp_path):
    from conftest import TINY_FILE

    with pytest.raises(FrozenDimError) as info:
        to_onnx(f"{TINY_FILE}:specializer", tmp_path / "m.onnx")
    err = info.value
    assert (err.dim, err.value) == ("batch", 2)
    assert "dim 'batch'" in str(err) and "fixed it to 2" in str(err)
    assert list(tmp_path.iterdir()) == []


def test_frozen_dim_check_on_a_handmade_graph(tmp_path):
    from mmexport.core.spec import ModelSpec

    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 16])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 16])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "g.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    spec = ModelSpec.from_dict(
        {
            "inputs": [{"name": "x", "modality": "sensor", "dtype": "float32", "shape": ["batch", "n"]}],
            "outputs": ["y"],
            "dims": {"batch": {"min": 1, "opt": 2, "max": 8}, "n": {"min": 4, "opt": 16, "max": 32}},
        }
    )
    with pytest.raises(FrozenDimError, match=r"dim 'n' .input 'x', axis 1. .* fixed it to 16"):
        normalize_dims(path, spec, external=False)


def test_output_count_must_match_the_spec(tmp_path):
    from conftest import TINY_FILE

    with pytest.raises(SpecError, match=r"returns 2 tensor.s. but the spec names 1"):
        to_onnx(f"{TINY_FILE}:two_outputs", tmp_path / "m.onnx")


def test_a_spec_the_model_cannot_run_is_an_export_error(tmp_path, tiny_spec_file):
    from conftest import TINY_FILE

    data = json.loads(tiny_spec_file.read_text())
    data["inputs"][2]["shape"] = ["batch", "steps", 7]
    tiny_spec_file.write_text(json.dumps(data))
    with pytest.raises(ExportError, match="fails in PyTorch on the spec's example inputs"):
        to_onnx(f"{TINY_FILE}:tiny", tmp_path / "m.onnx", spec=tiny_spec_file)


def test_torchscript_exporter_and_simplify(tmp_path):
    from conftest import TINY_FILE

    result = to_onnx(
        f"{TINY_FILE}:tiny",
        tmp_path / "ts.onnx",
        export=ExportConfig(exporter="torchscript", opset=17),
        simplify=True,
    )
    assert result.manifest.producer.exporter == "torchscript"
    assert result.parity.passed
    assert any("onnxslim" in n for n in result.notes)
    assert dim_values(result.path)["tokens"] == ["batch", "seq"]
    graph = onnx.load(str(result.path), load_external_data=False).graph
    logits = [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    assert logits == ["batch", 5]  # not the trace's batch size, frozen
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    spec = ModelSpec.from_dict(TINY_SPEC)
    feed = spec.sample_feed({**spec.example_point(), "batch": 3})
    assert session.run(None, feed)[0].shape == (3, 5)


def test_opset_outside_the_exporters_range():
    with pytest.raises(ExportError, match="opset 12 is outside"):
        ExportConfig(exporter="dynamo", opset=12)


def test_exported_graph_runs_in_onnxruntime_at_unseen_shapes(exported):
    result, _ = exported
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    from mmexport.core.spec import ModelSpec

    spec = ModelSpec.from_dict(TINY_SPEC)
    feed = spec.sample_feed({"batch": 3, "height": 31, "width": 9, "seq": 11, "steps": 3}, seed=5)
    (logits,) = session.run(None, feed)
    assert logits.shape == (3, 5) and np.isfinite(logits).all()


@pytest.mark.slow
def test_a_second_export_in_one_process_keeps_rnn_dims_dynamic(exported, tmp_path):
    from conftest import TINY_FILE

    # the module fixture exported a GRU model already in this process
    again = to_onnx(f"{TINY_FILE}:tiny", tmp_path / "again.onnx", parity=ParityConfig(random_points=0))
    assert dim_values(again.path)["imu"] == ["batch", "steps", 6]


@pytest.mark.slow
def test_two_dims_the_model_needs_equal_are_named(tmp_path):
    from conftest import TINY_FILE
    from mmexport.core.spec import ModelSpec
    from tiny_models import SUM_SPEC

    with pytest.raises(SpecError, match=r"dims 'n' and 'm' must be equal for this model"):
        to_onnx(f"{TINY_FILE}:sum_of_two", tmp_path / "m.onnx", spec=ModelSpec.from_dict(SUM_SPEC))
    assert list(tmp_path.iterdir()) == []


def test_a_point_where_pytorch_itself_fails_fails_the_gate(exported):
    from mmexport.core.spec import ModelSpec
    from mmexport.export.parity import run_parity
    from tiny_models import tiny

    class FailsOnBigBatches(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = tiny()

        def forward(self, image, tokens, imu):
            if image.shape[0] > 2:
                raise RuntimeError("out of memory")
            return self.inner(image, tokens, imu)

    result, _ = exported
    report = run_parity(FailsOnBigBatches(), result.path, ModelSpec.from_dict(TINY_SPEC))
    assert not report.passed
    bad = {r.point: r.error for r in report.failures}
    assert "max" in bad and bad["max"] == "RuntimeError: out of memory"
    assert {r.failed_in for r in report.failures} == {"pytorch"}
    assert next(r for r in report.rows if r.point == "opt").passed


@pytest.mark.slow
def test_weights_past_the_single_file_limit_go_to_external_data(tmp_path, monkeypatch):
    from conftest import TINY_FILE
    from mmexport.export import onnx_export

    monkeypatch.setattr(onnx_export, "SINGLE_FILE_LIMIT", 0)
    result = to_onnx(f"{TINY_FILE}:tiny", tmp_path / "big.onnx", parity=ParityConfig(random_points=0))
    assert result.manifest.producer.external_data["file"]  # type: ignore[index] == "big.onnx.data"
    assert len(result.manifest.producer.external_data["sha256"])  # type: ignore[index] == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data", "big.onnx.json"]
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "tokens", "imu"]
