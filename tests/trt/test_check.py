"""``mmexport check``: real problems in real graphs, the built-in models clean, the CLI's exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from mmexport.cli.app import cli
from mmexport.core.errors import CheckError
from mmexport.trt.check import check_onnx
from mmexport.trt.opsupport import matrices, matrix_for
from mmexport.trt.targets import get_target

from . import graphs

GPU = get_target("gpu")
ORIN = get_target("jetson-orin")


def codes(report, level="error"):
    return [f.code for f in report.findings if f.level == level]


@pytest.fixture(scope="session")
def seed_onnx(seed_export):
    """The built-in ``seed`` model (CNN + GRU), exported once with its manifest (read-only)."""
    return seed_export.path, seed_export.manifest.spec


def test_matrix_data_has_both_generations_releases():
    releases = [m.tensorrt for m in matrices()]
    assert releases == ["10.15", "10.3"]
    newest, jetpack6 = matrices()
    assert (newest.opset_min, newest.opset_max) == (9, 24)
    assert (jetpack6.opset_min, jetpack6.opset_max) == (9, 20)
    assert newest.entry("Attention").supported and not jetpack6.entry("Attention").supported
    assert "Scan output length cannot be dynamic" in newest.entry("Loop").restrictions
    assert matrix_for("11.4.0")[1] is not None  # no 11.x matrix: said so
    matrix, note = matrix_for("10.13.3")  # between the two: 10.3's, said to be approximate
    assert matrix == jetpack6 and note is not None and "Changelog" in note
    assert matrix_for("10.3.0") == (jetpack6, None)


def test_dynamic_loop_is_an_error():
    report = check_onnx(graphs.dynamic_loop(), GPU)
    loop = [f for f in report.errors if f.code == "loop-dynamic-scan"]
    assert loop and loop[0].node == "rows" and loop[0].op == "Loop"
    assert not report.ok


def test_opset_newer_than_jetpack6_parser():
    assert "opset-too-new" in codes(check_onnx(graphs.relu(opset=21), ORIN))
    assert check_onnx(graphs.relu(opset=21), GPU).ok  # 10.15's parser takes up to 24
    assert "opset-too-new" in codes(check_onnx(graphs.relu(opset=21), GPU, tensorrt_version="10.3.0"))


def test_op_newer_than_the_parser():
    model = graphs.single_op("RMSNormalization", 2)
    on_orin = check_onnx(model, ORIN)  # 10.3: also opset 24 too new
    unsupported = [f for f in on_orin.errors if f.code == "op-unsupported"]
    assert unsupported and "added in TensorRT 10.15" in unsupported[0].message
    assert "op-unsupported" not in codes(check_onnx(model, GPU, tensorrt_version="10.15"))


def test_op_the_parser_never_had():
    assert "op-unsupported" in codes(check_onnx(graphs.single_op("Det"), GPU))
    assert "op-unsupported" in codes(check_onnx(graphs.single_op("NoSuchOp"), GPU))


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"zero_point": 3}, "qdq-zero-point"),
        ({"domain": "com.microsoft"}, "qdq-domain"),
        ({"zp_type": __import__("numpy").uint8}, "qdq-type"),
    ],
)
def test_qdq_rules(kwargs, code):
    report = check_onnx(graphs.qdq(**kwargs), GPU)
    assert code in codes(report)
    assert {f.node for f in report.errors if f.code == code} <= {"q", "dq"}


def test_symmetric_int8_qdq_passes():
    assert check_onnx(graphs.qdq(), GPU).ok


def test_lstm_attributes_tensorrt_refuses():
    assert check_onnx(graphs.lstm(), GPU).ok
    assert "rnn-attribute" in codes(check_onnx(graphs.lstm(input_forget=1), GPU))
    assert "rnn-attribute" in codes(check_onnx(graphs.lstm(layout=1), GPU))


def test_dla_target_reports_dynamic_shapes_and_gpu_fallbacks():
    report = check_onnx(graphs.dynamic_loop(), ORIN)
    warnings = codes(report, "warning")
    assert "dla-dynamic-shape" in warnings and "dla-layer" in warnings
    assert "dla-layer" not in codes(check_onnx(graphs.dynamic_loop(), GPU), "warning")


def test_dla_target_warns_that_an_fp32_model_runs_nothing_on_dla():
    assert "dla-fp32" in codes(check_onnx(graphs.relu(), ORIN), "warning")
    assert "dla-fp32" not in codes(check_onnx(graphs.relu(), GPU), "warning")  # no DLA there
    assert "dla-fp32" not in codes(check_onnx(graphs.qdq(), ORIN), "warning")  # INT8 Q/DQ
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["batch", 4])
    fp16 = graphs.model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [x], [y])
    assert "dla-fp32" not in codes(check_onnx(fp16, ORIN), "warning")


@pytest.mark.slow
def test_seed_model_passes_gpu_and_its_gru_is_seen(seed_onnx):
    path, spec = seed_onnx
    report = check_onnx(path, GPU, spec=spec)
    assert report.ok, report.to_text()
    gru = [f for f in report.findings if f.op == "GRU"]
    # one forward GRU node: only the matrix's (bidirectional) restriction is mentioned, as info
    assert [f.level for f in gru] == ["info"] and gru[0].code == "op-restriction"
    orin = check_onnx(path, ORIN, spec=spec)
    assert orin.ok
    assert any(f.code == "dla-layer" and f.op == "GRU" for f in orin.warnings)


def test_raise_for_errors_is_one_check_error():
    report = check_onnx(graphs.dynamic_loop(), GPU)
    with pytest.raises(CheckError, match="loop-dynamic-scan") as info:
        report.raise_for_errors()
    assert info.value.report is report and info.value.target == "gpu"


@pytest.mark.slow
def test_cli_exit_codes_and_json(tmp_path, seed_onnx):
    import onnx

    bad = tmp_path / "loop.onnx"
    onnx.save(graphs.dynamic_loop(), bad)
    runner = CliRunner()
    result = runner.invoke(cli, ["check", str(bad), "--target", "gpu"])
    assert result.exit_code == 1
    assert "loop-dynamic-scan" in result.output and "error: TensorRT check failed" in result.output
    as_json = runner.invoke(cli, ["check", str(bad), "--json"])
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["errors"] >= 1
    good = runner.invoke(cli, ["check", str(seed_onnx[0]), "--target", "jetson-orin", "--json"])
    assert good.exit_code == 0, good.output
    assert json.loads(good.stdout)["target"] == "jetson-orin"
    missing = runner.invoke(cli, ["check", str(tmp_path / "none.onnx")])
    assert missing.exit_code == 1 and "none.onnx: does not exist" in missing.output


@pytest.mark.slow
def test_pipeline_runs_the_check_before_the_expensive_stages(tmp_path, seed_onnx, caplog):
    import logging

    import onnx

    from mmexport.pipeline.run import tensorrt_check

    path, spec = seed_onnx
    caplog.set_level(logging.INFO, logger="mmexport")  # the pipeline's notes
    notes = tensorrt_check(path, spec, "gpu")
    assert notes[0].startswith("TensorRT check: 0 error(s)")
    bad = tmp_path / "loop.onnx"
    onnx.save(graphs.dynamic_loop(), bad)
    with pytest.raises(CheckError):
        tensorrt_check(bad, spec, "gpu")
    assert any("loop-dynamic-scan" in s for s in caplog.messages)


def test_releases_between_matrices_accept_what_the_changelog_added() -> None:
    """Jetson Thor's TensorRT 10.13 sits between the 10.3 and 10.15 matrices: STFT (10.5) is
    accepted, Attention (10.14) is not, and an opset past 10.3's is a warning, not an error."""
    thor = get_target("jetson-thor")
    stft = check_onnx(graphs.single_op("STFT", 2), thor, tensorrt_version="10.13.3")
    assert not [f for f in stft.findings if f.code == "op-unsupported"]
    assert any(f.code == "matrix-approximate" for f in stft.findings)
    attention = check_onnx(graphs.single_op("Attention", 3), thor, tensorrt_version="10.13.3")
    assert [f.level for f in attention.findings if f.code == "op-unsupported"] == ["error"]
    newer_opset = check_onnx(graphs.relu(opset=22), thor, tensorrt_version="10.13.3")
    assert [f.level for f in newer_opset.findings if f.code == "opset-too-new"] == ["warning"]
    on_10_3 = check_onnx(graphs.relu(opset=22), get_target("jetson-orin"), tensorrt_version="10.3.0")
    assert [f.level for f in on_10_3.findings if f.code == "opset-too-new"] == ["error"]


@pytest.mark.parametrize("name", ["fusion", "seed"])
def test_the_graph_read_without_its_weights_gets_the_same_report(builtin_export, name: str) -> None:  # type: ignore[no-untyped-def]
    """``build`` and ``pipeline`` check the mapped graph (weights left in the file, out of memory
    while TensorRT builds): every target reports what it reports on the parsed model."""
    from mmexport.core.onnx_file import read_onnx
    from mmexport.core.onnx_mapped import read_mapped
    from mmexport.trt.targets import target_names

    path = builtin_export(name).path
    mapped, parsed = read_mapped(path).proto, read_onnx(path)
    assert any(t.data_location == TensorProto.EXTERNAL for t in mapped.graph.initializer)
    for target in target_names():
        ours = check_onnx(mapped, get_target(target)).to_dict()
        assert ours == check_onnx(parsed, get_target(target)).to_dict(), target
