from __future__ import annotations

import json

import onnx
import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def tiny_cli_export(tmp_path_factory):
    from conftest import TINY_FILE

    out = tmp_path_factory.mktemp("cli") / "tiny.onnx"
    result = CliRunner().invoke(cli, ["to-onnx", f"{TINY_FILE}:tiny", "-o", str(out), "--json", "-q"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


@pytest.mark.slow
def test_to_onnx_json_result(tiny_cli_export):
    out, data = tiny_cli_export
    assert data["path"] == str(out)
    assert data["parity"]["passed"] is True
    assert {r["point"] for r in data["parity"]["rows"]} >= {"opt", "min", "max"}


@pytest.mark.slow
def test_inspect_table_and_json(runner, tiny_cli_export):
    out, _ = tiny_cli_export
    table = runner.invoke(cli, ["inspect", str(out)])
    assert table.exit_code == 0
    assert "tokens" in table.output and "seq 1..12 (opt 5)" in table.output
    assert "sha256 matches" in table.output
    data = json.loads(runner.invoke(cli, ["inspect", str(out), "--json"]).stdout)
    assert data["precision"] == "fp32"
    assert data["manifest"]["parity_passed"] is True
    imu = next(i for i in data["inputs"] if i["name"] == "imu")
    assert imu["modality"] == "sensor" and imu["shape"] == ["batch", "steps", 6]
    assert data["ops"]["GRU"] == 1


@pytest.mark.slow
def test_inspect_reports_a_modified_file(runner, tiny_cli_export, tmp_path):
    out, _ = tiny_cli_export
    copy = tmp_path / "m.onnx"
    model = onnx.load(str(out))
    model.producer_name = "edited"
    onnx.save(model, str(copy))
    (tmp_path / "m.onnx.json").write_text(out.with_name("tiny.onnx.json").read_text())
    result = runner.invoke(cli, ["inspect", str(copy)])
    assert "DOES NOT MATCH" in result.output


@pytest.mark.slow
def test_parity_failure_prints_the_table_and_exits_non_zero(runner, tmp_path):
    from conftest import TINY_FILE

    out = tmp_path / "cheat.onnx"
    result = runner.invoke(cli, ["to-onnx", f"{TINY_FILE}:cheater", "-o", str(out), "--random-points", "0"])
    assert result.exit_code == 1
    assert "max abs" in result.stderr and "FAIL" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: parity gate failed")
    assert "Traceback" not in result.output
    assert not out.exists() and not out.with_name("cheat.onnx.json").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["to-onnx", "missing.py:build"],
            "error: model 'missing.py:build': file 'missing.py' does not exist",
        ),
        (["to-onnx", "resnet"], "is not a built-in model (built-in: fusion, seed)"),
        (["inspect", "nothing.onnx"], "error: nothing.onnx: does not exist"),
    ],
)
def test_user_errors_are_one_line(runner, args, fragment):
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_spec_file_is_one_line(runner, tmp_path):
    from conftest import TINY_FILE

    spec = tmp_path / "spec.json"
    spec.write_text('{"inputs": [], "outputs": ["y"]}')
    result = runner.invoke(
        cli, ["to-onnx", f"{TINY_FILE}:tiny", "--spec", str(spec), "-o", str(tmp_path / "m.onnx")]
    )
    assert result.exit_code == 1
    assert "error: spec: 'inputs' must be a non-empty list" in result.stderr


def test_inspect_refuses_garbage(runner, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    result = runner.invoke(cli, ["inspect", str(bad)])
    assert result.exit_code == 1
    assert "cannot be parsed as ONNX" in result.stderr


@pytest.mark.parametrize("content", [b"", b"\x12\x00"], ids=["empty", "no-graph"])
def test_inspect_refuses_a_file_without_a_graph(runner, tmp_path, content):
    path = tmp_path / "empty.onnx"
    path.write_bytes(content)  # both parse as a ModelProto: nothing, or an empty producer name
    result = runner.invoke(cli, ["inspect", str(path)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"error: {path}: has no graph: an empty or damaged ONNX file\n"


def test_debug_shows_the_traceback(runner):
    from mmexport.core.errors import ModelLoadError

    result = runner.invoke(cli, ["--debug", "to-onnx", "missing.py:build"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ModelLoadError)


def test_help_explains(runner):
    result = runner.invoke(cli, ["to-onnx", "--help"])
    assert result.exit_code == 0
    assert "parity gate" in result.output and "--spec" in result.output


def test_models_lists_the_builtins(runner):
    table = runner.invoke(cli, ["models"])
    assert table.exit_code == 0 and "fusion (default)" in table.output
    data = json.loads(runner.invoke(cli, ["models", "--json"]).stdout)
    assert [m["name"] for m in data] == ["fusion", "seed"]
    assert data[0]["inputs"] == {"image": "image", "tokens": "text", "audio": "audio"}
    assert data[0]["spec"]["dims"]["frames"]["max"] == 1000


def test_inspect_an_onnx_file_without_manifest(runner, tmp_path):
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT16, ["n", 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT16, ["n", 4])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "plain.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    result = runner.invoke(cli, ["inspect", str(path)])
    assert result.exit_code == 0
    assert "manifest    none" in result.output and "float16" in result.output


def test_output_that_is_a_folder_is_refused(runner, tmp_path):
    from conftest import TINY_FILE

    result = runner.invoke(cli, ["to-onnx", f"{TINY_FILE}:tiny", "-o", str(tmp_path)])
    assert result.exit_code == 2  # click's usage error
    assert "is a directory" in result.stderr


@pytest.mark.slow
def test_interrupted_export_leaves_nothing(runner, tmp_path, monkeypatch):
    from conftest import TINY_FILE
    from mmexport.export import stage

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "run_parity", interrupted)
    result = runner.invoke(cli, ["to-onnx", f"{TINY_FILE}:tiny", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 130
    assert "interrupted; the file being written was discarded" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_interrupt_held_until_the_manifest_is_written_says_so(runner, tmp_path, monkeypatch):
    import signal
    import threading

    from mmexport.core import files, manifest
    from mmexport.core.manifest import read_manifest
    from runtime.onnx_models import write_tiny

    monkeypatch.setattr(files, "INTERRUPTED", threading.Event())  # what the SIGINT handlers set
    model, place = write_tiny(tmp_path), manifest.place_manifest

    def ctrl_c_then_place(staged_manifest, final_path):
        signal.raise_signal(signal.SIGINT)  # Ctrl-C between the artifact's move and its manifest's
        return place(staged_manifest, final_path)

    monkeypatch.setattr(manifest, "place_manifest", ctrl_c_then_place)
    out = tmp_path / "m.fp16.onnx"
    result = runner.invoke(cli, ["fp16", str(model), "-o", str(out)])
    assert result.exit_code == 130 and files.INTERRUPTED.is_set()
    assert result.stderr.strip().splitlines()[-1] == (
        "interrupted after the artifact and its manifest were written; nothing half-written was left"
    )
    written = read_manifest(out)
    assert written is not None and written.sha256 == files.sha256_file(out)


@pytest.mark.slow
def test_json_errors_are_json_on_stdout(runner, tmp_path):
    from conftest import TINY_FILE

    out = tmp_path / "cheat.onnx"
    args = ["to-onnx", f"{TINY_FILE}:cheater", "-o", str(out), "--random-points", "0", "--json", "-q"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    failure = json.loads(result.stdout)
    assert failure["type"] == "ParityError" and failure["parity"]["passed"] is False
    missing = json.loads(runner.invoke(cli, ["inspect", "nothing.onnx", "--json"]).stdout)
    assert missing == {"error": "nothing.onnx: does not exist", "type": "ArtifactError"}


def test_a_data_function_that_exits_is_an_error_not_a_silent_success(runner, tmp_path):
    from runtime.onnx_models import write_tiny

    model = write_tiny(tmp_path)
    (tmp_path / "feeds.py").write_text("import sys\ndef make_feeds(spec):\n    sys.exit(0)\n")
    data = f"{tmp_path / 'feeds.py'}:make_feeds"
    result = runner.invoke(cli, ["calibrate", str(model), "--data", data, "--eval-samples", "0"])
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: data: make_feeds {data!r} called sys.exit(0)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feeds.py", "tiny.onnx", "tiny.onnx.json"]


def test_to_onnx_parity_points_choose_the_gate_points(tmp_path):
    from conftest import TINY_FILE

    out = tmp_path / "t.onnx"
    args = ["to-onnx", f"{TINY_FILE}:tiny", "-o", str(out), "--exporter", "torchscript"]
    result = CliRunner().invoke(cli, [*args, "--parity-points", "opt,1"])
    assert result.exit_code == 0, result.output
    assert "parity gate at 2 shape points: opt, random-1 (--parity-points to change)" in result.stderr
    assert "parity passed at 2 shape points" in result.stdout
    bad = CliRunner().invoke(cli, [*args, "--parity-points", "middle"])
    assert bad.exit_code == 1
    assert bad.stderr.strip().splitlines()[-1].startswith("error: --parity-points takes opt, min, max")
