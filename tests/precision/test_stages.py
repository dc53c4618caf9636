"""fp16 / calibrate / accuracy end to end on the tiny model, with each kind of data source."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from mmexport.core.errors import ArtifactError, DataError, MmexportError, PrecisionError
from mmexport.core.files import sha256_file
from mmexport.core.inspection import model_precision
from mmexport.core.manifest import read_manifest
from mmexport.precision import calib_cache
from mmexport.precision.collect import collect_stats
from mmexport.precision.stages import CalibrationConfig, Fp16Config, accuracy, calibrate, to_fp16
from precision.precision_data import LABELS, tiny_feeds

FAST = CalibrationConfig(samples=16, batch_size=2, sensitivity=False)


def write_vector_model(path: Path, nodes: list, initializers: list) -> Path:
    """A handmade FP32 graph from x [n, 4] to y [n, 4], with the manifest to-onnx would write."""
    from onnx import TensorProto, helper

    from mmexport.core.manifest import Manifest
    from mmexport.core.spec import ModelSpec

    graph = helper.make_graph(
        nodes,
        path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        initializers,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    spec = ModelSpec.from_dict(
        {
            "inputs": [{"name": "x", "modality": "sensor", "dtype": "float32", "shape": ["n", 4]}],
            "outputs": ["y"],
            "dims": {"n": {"min": 1, "opt": 2, "max": 4}},
        }
    )
    Manifest(kind="onnx", artifact=path.name, sha256=sha256_file(path), spec=spec, precision="fp32").write(
        path
    )
    return path


def write_npz(path: Path, feeds: list[dict[str, np.ndarray]], labels: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i, feed in enumerate(feeds):
        extra = {"labels": np.arange(len(feed["image"])) % len(LABELS)} if labels else {}
        np.savez(path / f"batch{i:03d}.npz", **feed, **extra)
    return path


def write_sample_folders(path: Path, count: int) -> Path:
    for i, feed in enumerate(tiny_feeds(count, seed=3, batch=1)):
        sample = path / f"s{i:02d}"
        sample.mkdir(parents=True)
        for name, value in feed.items():
            np.save(sample / f"{name}.npy", value[0])
        (sample / "label.txt").write_text(LABELS[i % len(LABELS)])
    return path


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_calibrate_from_npz_writes_qdq_cache_and_manifest(
    tiny_fp32_onnx: Path, tmp_path: Path, method: str
) -> None:
    data = write_npz(tmp_path / "calib", tiny_feeds(6))
    out = tmp_path / "out" / "tiny.int8.onnx"
    config = CalibrationConfig(method=method, samples=12, batch_size=2, sensitivity=False)
    result = calibrate(tiny_fp32_onnx, out, data=data, config=config, eval_data=str(data))
    assert result.path == out and model_precision(onnx.load(str(out))) == "int8-qdq"
    manifest = read_manifest(out)
    assert manifest is not None and manifest.precision == "int8"
    producer = manifest.producer.details
    assert producer["method"] == method and producer["samples"] == 12
    assert len(producer["data_sha256"]) == 64
    assert producer["shape_coverage"]["height"] == {"min": 8, "max": 16}
    accuracy_rows = manifest.validation.accuracy["variants"]
    assert [v["precision"] for v in accuracy_rows] == ["fp32", "int8"]
    assert accuracy_rows[1]["accuracy"] is not None  # the npz files carry labels
    # The cache holds the same ranges as the Q/DQ model, in TensorRT's format.
    head, scales = calib_cache.parse_cache((tmp_path / "out" / "tiny.int8.calib").read_text())
    expected_head = {"minmax": "MinMaxCalibration"}.get(method, "EntropyCalibration2")
    assert head == f"TRT-100300-{expected_head}"
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer}
    assert float(inits["image_scale"]) == pytest.approx(scales["image"], rel=1e-6)
    stats, _ = collect_stats(tiny_fp32_onnx, [np.load(p) for p in sorted(data.glob("*.npz"))])
    if method == "minmax":
        assert scales["image"] == pytest.approx(stats["image"].amax / 127, rel=1e-6)


def test_calibrate_from_sample_folders_and_python_iterables(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    folder = write_sample_folders(tmp_path / "samples", 6)
    a = calibrate(tiny_fp32_onnx, tmp_path / "a.onnx", data=folder, config=FAST, eval_data=folder)
    assert a.accuracy.samples == 6 and a.accuracy.labelled
    feeds = tiny_feeds(4)
    b = calibrate(tiny_fp32_onnx, tmp_path / "b.onnx", data=feeds, config=FAST, eval_data=feeds)
    assert b.accuracy.samples == 8 and not b.accuracy.labelled
    assert b.accuracy.variants[1].accuracy is None and b.accuracy.variants[1].agreement() is not None
    manifests = [read_manifest(tmp_path / n) for n in ("a.onnx", "b.onnx")]
    hashes = {m.producer.details["data_sha256"] for m in manifests if m is not None}
    assert len(hashes) == 2


def test_calibrate_from_make_feeds_file(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    source = tmp_path / "feeds_factory.py"
    source.write_text(
        "import numpy as np\n"
        "def make_feeds(spec):\n"
        "    rng = np.random.default_rng(0)\n"
        "    for _ in range(3):\n"
        "        yield {'image': rng.normal(size=(2, 3, 16, 16)).astype(np.float32),\n"
        "               'tokens': rng.integers(0, 20, size=(2, 4)),\n"
        "               'imu': rng.normal(size=(2, 5, 6)).astype(np.float32)}\n"
    )
    result = calibrate(tiny_fp32_onnx, tmp_path / "m.onnx", data=f"{source}:make_feeds", config=FAST)
    assert result.samples == 6


def test_bad_data_names_sample_and_input_and_writes_nothing(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    feeds = tiny_feeds(3)
    feeds[1]["depth"] = np.zeros((2, 1), dtype=np.float32)
    data = write_npz(tmp_path / "bad", feeds)
    out = tmp_path / "out" / "x.onnx"
    with pytest.raises(DataError, match="depth") as info:
        calibrate(tiny_fp32_onnx, out, data=data, config=FAST)
    assert "batch001" in str(info.value)
    assert not (tmp_path / "out").exists()
    too_long = tiny_feeds(1)
    too_long[0]["tokens"] = np.zeros((2, 13), dtype=np.int64)  # seq max is 12
    with pytest.raises(DataError, match="tokens"):
        calibrate(tiny_fp32_onnx, out, data=too_long, config=FAST)
    assert not (tmp_path / "out").exists()


def test_calibrate_refuses_inputs_that_are_not_fp32_artifacts(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.onnx"
    shutil.copy(tiny_fp32_onnx, bare)
    with pytest.raises(ArtifactError, match="no manifest"):
        calibrate(bare, tmp_path / "x.onnx", config=FAST)
    int8 = calibrate(tiny_fp32_onnx, tmp_path / "q.onnx", data=tiny_feeds(2), config=FAST).path
    with pytest.raises(ArtifactError, match="is int8-qdq; this step needs the fp32 model"):
        calibrate(int8, tmp_path / "qq.onnx", config=FAST)
    with pytest.raises(ArtifactError, match="does not exist"):
        to_fp16(tmp_path / "missing.onnx", tmp_path / "y.onnx")


def test_sensitivity_and_budget(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    feeds = tiny_feeds(4)
    config = CalibrationConfig(samples=8, batch_size=2, sensitivity=True, max_accuracy_drop=100.0)
    result = calibrate(tiny_fp32_onnx, tmp_path / "s.onnx", data=feeds, config=config, eval_data=feeds)
    branches = {c.branch for c in result.sensitivity if c.nodes}
    assert branches == {"image", "fusion"}
    # the embedding and the GRU have no Conv/MatMul/Gemm: listed, with nothing to quantize
    assert {(c.branch, c.drop_points) for c in result.sensitivity if not c.nodes} == {
        ("text", None),
        ("sensor", None),
    }
    manifest = read_manifest(tmp_path / "s.onnx")
    assert manifest is not None and manifest.producer.details["kept_fp32_branches"] == []
    assert {row["branch"] for row in manifest.validation.sensitivity} == branches | {"text", "sensor"}


def test_fp16_keeps_patterns_and_checks_against_fp32(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.fp16.onnx"
    result = to_fp16(
        tiny_fp32_onnx,
        out,
        config=Fp16Config(keep_fp32=("Gemm",)),
        data=tiny_feeds(3),
        eval_data=tiny_feeds(3),
    )
    model = onnx.load(str(out))
    assert model_precision(model) == "fp16"
    assert next(i.type.tensor_type.elem_type for i in model.graph.input) == onnx.TensorProto.FLOAT
    kept = result.kept_fp32
    assert any(reason == "--keep-fp32 Gemm" for reason in kept)
    manifest = read_manifest(out)
    assert manifest is not None and manifest.precision == "fp16"
    assert [i.dtype for i in manifest.spec.inputs] == ["float32", "int64", "float32"]  # FP32 I/O
    assert manifest.validation.fp16_check["variants"][1]["outputs"][0]["cosine_min"] > 0.99
    io16 = to_fp16(
        tiny_fp32_onnx, tmp_path / "io16.onnx", config=Fp16Config(fp16_io=True), data=tiny_feeds(2)
    )
    first = onnx.load(str(io16.path)).graph.input[0]
    assert first.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16


def test_fp16_io_manifest_says_float16_and_the_runtime_runs_it(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    """--fp16-io: the manifest's spec says float16 where the graph takes float16, so the runtime
    opens the file (it refused it: float32 in the manifest, float16 in the graph)."""
    from mmexport.core.errors import InputError
    from mmexport.runtime import Session

    out = to_fp16(
        tiny_fp32_onnx, tmp_path / "io16.onnx", config=Fp16Config(fp16_io=True, samples=4), eval_samples=0
    ).path
    manifest = read_manifest(out)
    assert manifest is not None
    graph = {i.name: i.type.tensor_type.elem_type for i in onnx.load(str(out)).graph.input}
    assert graph == {
        "image": onnx.TensorProto.FLOAT16,
        "tokens": onnx.TensorProto.INT64,
        "imu": onnx.TensorProto.FLOAT16,
    }
    assert {i.name: i.dtype for i in manifest.spec.inputs} == {
        "image": "float16",
        "tokens": "int64",
        "imu": "float16",
    }
    source = read_manifest(tiny_fp32_onnx)
    assert source is not None and manifest.spec.dims == source.spec.dims
    assert [i.shape for i in manifest.spec.inputs] == [i.shape for i in source.spec.inputs]

    feed32 = tiny_feeds(1)[0]
    feed16 = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in feed32.items()}
    logits = Session(out).run(feed16)["logits"]
    reference = Session(tiny_fp32_onnx).run(feed32)["logits"]
    assert logits.dtype == np.float16 and logits.shape == reference.shape
    np.testing.assert_allclose(logits.astype(np.float32), reference, atol=0.02)
    # float32 -> float16 could change values: the runtime's dtype rules refuse it, naming the input
    with pytest.raises(InputError, match="input 'image': dtype must be float16, got float32"):
        Session(out).run(feed32)
    # still a variant of its FP32 source for `accuracy` (which feeds both the same data)
    report = accuracy([tiny_fp32_onnx, out], data=tiny_feeds(2), samples=4)
    assert [v.precision for v in report.variants] == ["fp32", "fp16"]
    assert report.variants[1].worst_cosine() > 0.99


def test_accuracy_refuses_a_model_with_another_spec(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    from onnx import helper

    other = write_vector_model(tmp_path / "other.onnx", [helper.make_node("Relu", ["x"], ["y"])], [])
    with pytest.raises(MmexportError, match=r"other\.onnx has a different spec than .*tiny\.onnx"):
        accuracy([tiny_fp32_onnx, other], samples=2)


def test_fp16_refuses_a_model_that_loses_precision(tmp_path: Path) -> None:
    from onnx import helper, numpy_helper

    # y = (x + 3000.5) - 3000: FP16 stores 3000.5 as 3000 (its spacing there is 2), so y loses 0.5
    shift = numpy_helper.from_array(np.array(3000.5, dtype=np.float32), "shift")
    back = numpy_helper.from_array(np.array(3000.0, dtype=np.float32), "back")
    nodes = [
        helper.make_node("Add", ["x", "shift"], ["shifted"], name="add"),
        helper.make_node("Sub", ["shifted", "back"], ["y"], name="sub"),
    ]
    path = write_vector_model(tmp_path / "cancel.onnx", nodes, [shift, back])
    feeds = [{"x": np.random.default_rng(0).uniform(-0.1, 0.1, (2, 4)).astype(np.float32)}]
    with pytest.raises(PrecisionError, match="min cosine similarity") as info:
        to_fp16(path, tmp_path / "cancel.fp16.onnx", data=feeds)
    assert info.value.report is not None
    assert not (tmp_path / "cancel.fp16.onnx").exists()
    kept = to_fp16(path, tmp_path / "kept.onnx", config=Fp16Config(keep_fp32=("Add", "Sub")), data=feeds)
    assert kept.path.exists()


def test_accuracy_compares_variants_on_one_source(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    data = write_npz(tmp_path / "eval", tiny_feeds(3, seed=5))
    int8 = calibrate(tiny_fp32_onnx, tmp_path / "t.int8.onnx", data=tiny_feeds(3), config=FAST).path
    fp16 = to_fp16(tiny_fp32_onnx, tmp_path / "t.fp16.onnx", data=tiny_feeds(2)).path
    report = accuracy([tiny_fp32_onnx, fp16, int8], data=data)
    assert [v.precision for v in report.variants] == ["fp32", "fp16", "int8"]
    assert report.samples == 6 and report.labelled
    as_dict = json.loads(report.to_json())
    assert as_dict["reference"] == "tiny.onnx"
    assert set(as_dict["variants"][1]["outputs"][0]) >= {"max_abs", "max_rel", "cosine_min", "top1"}
    markdown = report.to_markdown()
    assert "| t.int8.onnx | int8 |" in markdown


def test_no_evaluation_when_asked(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    feeds = tiny_feeds(2)
    int8 = calibrate(tiny_fp32_onnx, tmp_path / "q.onnx", data=feeds, config=FAST, eval_samples=0)
    fp16 = to_fp16(tiny_fp32_onnx, tmp_path / "h.onnx", data=feeds, eval_samples=0)
    assert int8.accuracy is None and fp16.accuracy is None
    for path in (int8.path, fp16.path):
        manifest = read_manifest(path)
        assert manifest is not None and manifest.validation.accuracy is None
    budget = CalibrationConfig(samples=4, sensitivity=False, max_accuracy_drop=1.0)
    with pytest.raises(MmexportError, match="needs evaluation samples"):
        calibrate(tiny_fp32_onnx, tmp_path / "b.onnx", data=feeds, config=budget, eval_samples=0)


def test_calibrating_without_data_says_it_used_random_feeds(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    result = calibrate(tiny_fp32_onnx, tmp_path / "r.onnx", config=FAST, eval_samples=0)
    assert any("random feeds from the spec" in note for note in result.notes)


def test_fp16_keeps_readers_of_out_of_range_values_in_fp32(tmp_path: Path) -> None:
    """x * 1e5 * 1e-5: the value between the two Muls exceeds FP16; both must stay FP32, or the
    FP16 file computes inf (onnx's reference evaluator runs every Cast as written)."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    up = numpy_helper.from_array(np.array(1e5, dtype=np.float32), "up")
    down = numpy_helper.from_array(np.array(1e-5, dtype=np.float32), "down")
    nodes = [
        helper.make_node("Mul", ["x", "up"], ["big"], name="scale_up"),
        helper.make_node("Mul", ["big", "down"], ["back"], name="scale_down"),
        helper.make_node("Relu", ["back"], ["y"], name="relu"),
    ]
    path = write_vector_model(tmp_path / "overflow.onnx", nodes, [up, down])
    feeds = [{"x": np.random.default_rng(0).uniform(-1, 1, (2, 4)).astype(np.float32)}]
    result = to_fp16(path, tmp_path / "overflow.fp16.onnx", data=feeds, eval_samples=0)
    kept = {node for nodes in result.kept_fp32.values() for node in nodes}
    assert {"scale_up", "scale_down"} <= kept and "relu" not in kept
    out = ReferenceEvaluator(str(result.path)).run(None, feeds[0])[0]
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, np.maximum(feeds[0]["x"], 0), rtol=1e-2, atol=1e-3)


def test_data_outside_the_spec_values_is_refused_by_sample(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    feeds = tiny_feeds(2)
    feeds[1]["tokens"][0, 0] = 1000  # the spec's range is [0, 20)
    with pytest.raises(DataError, match=r"input 'tokens': values must be in \[0, 20\)"):
        calibrate(tiny_fp32_onnx, tmp_path / "t.onnx", data=feeds, config=FAST, eval_samples=0)
    feeds = tiny_feeds(2)
    feeds[0]["image"][0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="input 'image': holds 1 NaN or infinite"):
        to_fp16(tiny_fp32_onnx, tmp_path / "n.onnx", data=feeds, eval_samples=0)
    assert not list(tmp_path.glob("*.onnx"))


def test_outputs_that_would_lose_the_source_are_refused_first(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="is the input model"):
        to_fp16(tiny_fp32_onnx, tiny_fp32_onnx, data=tiny_feeds(1))
    with pytest.raises(ArtifactError, match=r"must end in \.onnx"):
        calibrate(tiny_fp32_onnx, tmp_path / "x.calib", data=tiny_feeds(1), config=FAST)
    with pytest.raises(MmexportError, match="TensorRT version must look like"):
        CalibrationConfig(trt_version="10.-3")
    assert not list(tmp_path.iterdir())


def test_budget_needs_something_to_measure(tiny_fp32_onnx: Path, tmp_path: Path) -> None:
    from mmexport.core.manifest import Manifest

    manifest = read_manifest(tiny_fp32_onnx)
    assert manifest is not None
    unlabelled = tmp_path / "unlabelled.onnx"
    shutil.copy(tiny_fp32_onnx, unlabelled)
    data = manifest.to_dict()["spec"]
    data["outputs"] = ["logits"]  # no class labels: no top-1 agreement to budget on
    from mmexport.core.spec import ModelSpec

    Manifest(
        kind="onnx",
        artifact=unlabelled.name,
        sha256=sha256_file(unlabelled),
        spec=ModelSpec.from_dict(data),
        precision="fp32",
    ).write(unlabelled)
    config = CalibrationConfig(samples=4, batch_size=2, sensitivity=False, max_accuracy_drop=0.0)
    feeds = tiny_feeds(2)
    with pytest.raises(MmexportError, match="--max-accuracy-drop needs an accuracy to measure"):
        calibrate(unlabelled, tmp_path / "u.int8.onnx", data=feeds, config=config, eval_data=feeds)


def test_random_spec_feeds_follow_samples_and_keep_splits_apart(tiny_fp32_onnx: Path) -> None:
    from mmexport.precision.common import SpecFeeds, load_source_model, open_data

    source = load_source_model(tiny_fp32_onnx)
    calib = open_data(None, source, split="calibration", samples=9, batch_size=8)
    evaluation = open_data(None, source, split="evaluation", samples=9, batch_size=8)
    assert isinstance(calib, SpecFeeds) and isinstance(evaluation, SpecFeeds)
    assert sum(len(b.feed["image"]) for b in calib.batches()) == 9
    assert calib.fingerprint() != evaluation.fingerprint()
    first_calib, first_eval = next(calib.batches()).feed, next(evaluation.batches()).feed
    assert not np.array_equal(first_calib["image"], first_eval["image"])


def test_fp16_says_when_the_fp32_model_itself_gives_nan(tmp_path: Path) -> None:
    from onnx import helper

    # y = log(x): negative sample values give NaN in FP32 already
    path = write_vector_model(tmp_path / "log.onnx", [helper.make_node("Log", ["x"], ["y"], name="log")], [])
    feeds = [{"x": np.array([[1.0, 2.0, -1.0, 3.0], [1.0, 2.0, 3.0, 4.0]], dtype=np.float32)}]
    with pytest.raises(PrecisionError, match=r"FP32 model itself gives NaN or inf on 1 of 2 samples"):
        to_fp16(path, tmp_path / "log.fp16.onnx", data=feeds)
    assert not (tmp_path / "log.fp16.onnx").exists()


def test_user_models_are_evaluated_on_their_data_when_no_eval_data(
    tiny_fp32_onnx: Path, tmp_path: Path
) -> None:
    data = write_npz(tmp_path / "calib", tiny_feeds(3))
    result = calibrate(tiny_fp32_onnx, tmp_path / "e.int8.onnx", data=data, config=FAST)
    assert result.accuracy is not None and result.accuracy.labelled  # the npz labels, not random feeds
    assert any("evaluated on the --data samples" in note for note in result.notes)


def test_a_reference_that_predicts_one_class_is_flagged(tmp_path: Path) -> None:
    from onnx import helper

    from mmexport.core.spec import ModelSpec
    from mmexport.precision.accuracy import evaluate

    # y = 0 * x + [1, 0, 0, 0]: the same top-1 class whatever the input (like untrained weights)
    zero = onnx.numpy_helper.from_array(np.zeros(4, dtype=np.float32), "zero")
    bias = onnx.numpy_helper.from_array(np.array([1, 0, 0, 0], dtype=np.float32), "bias")
    nodes = [helper.make_node("Mul", ["x", "zero"], ["z"]), helper.make_node("Add", ["z", "bias"], ["y"])]
    path = write_vector_model(tmp_path / "const.onnx", nodes, [zero, bias])
    spec = ModelSpec.from_dict(
        {
            "inputs": [{"name": "x", "modality": "sensor", "dtype": "float32", "shape": ["n", 4]}],
            "outputs": [{"name": "y", "labels": ["a", "b", "c", "d"]}],
            "dims": {"n": {"min": 1, "opt": 2, "max": 4}},
        }
    )

    from mmexport.precision.common import FeedBatch

    batch = FeedBatch({"x": np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)})
    report = evaluate([("m", "fp32", path), ("n", "fp32", path)], [batch], spec, source="t")
    assert report.reference_classes == 1
    assert "predicts the same class for all 3 samples" in report.warnings()[0]
    assert "warning: the reference predicts" in report.to_markdown()


@pytest.mark.parametrize("stage", ["fp16", "calibrate"])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(
    tiny_fp32_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """The output is taken (folder, lock, staging) first, as to-onnx takes its own: a folder that
    cannot be made is refused before the scan or the calibration runs."""
    import mmexport.precision.fp16_stage
    import mmexport.precision.stages
    from mmexport.core.errors import ArtifactError
    from mmexport.precision.stages import calibrate, to_fp16

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output was taken")

    monkeypatch.setattr(mmexport.precision.fp16_stage, "scan_fp16", no_work)
    monkeypatch.setattr(mmexport.precision.stages, "collect_stats", no_work)
    (tmp_path / "a_file").write_text("")
    output = tmp_path / "a_file" / "model.variant.onnx"
    with pytest.raises(ArtifactError, match="cannot create the output folder"):
        (to_fp16 if stage == "fp16" else calibrate)(tiny_fp32_onnx, output)
