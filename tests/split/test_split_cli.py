"""`mmexport to-onnx --split`: writes the folder, refuses what it cannot split, writes nothing on failure."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mmexport.cli.app import cli
from mmexport.split.composition import read_composition

MODELS = Path(__file__).parent / "split_models.py"
FAST = ["--exporter", "torchscript", "--random-points", "1"]  # dynamo takes ~5x longer on these


def test_split_writes_the_folder(tmp_path):
    out = tmp_path / "tiny"
    result = CliRunner().invoke(
        cli, ["to-onnx", f"{MODELS}:tiny", "--split", "-o", str(out), "--json", "-q", *FAST]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["composed_parity"]["passed"] is True
    assert sorted(payload["parts"]) == ["fuse", "image", "imu"]
    assert sorted(p.name for p in out.iterdir()) == [
        "composition.json",
        "fuse.onnx",
        "fuse.onnx.json",
        "image.onnx",
        "image.onnx.json",
        "imu.onnx",
        "imu.onnx.json",
    ]
    composition = read_composition(out)
    assert composition.part("imu").absent is not None and composition.part("image").absent is None
    # again into the same folder: the earlier export is replaced whole
    again = CliRunner().invoke(cli, ["to-onnx", f"{MODELS}:tiny", "--split", "-o", str(out), "-q", *FAST])
    assert again.exit_code == 0, again.output
    assert "wrote" in again.stdout and "may be absent: imu (mask)" in again.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging or old folder left"


def test_composition_that_differs_from_forward_writes_nothing(tmp_path):
    out = tmp_path / "bad"
    result = CliRunner().invoke(
        cli, ["to-onnx", f"{MODELS}:disagreeing", "--split", "-o", str(out), "-q", *FAST]
    )
    assert result.exit_code == 1
    assert "composed parity gate failed" in result.stderr and "nothing written" in result.stderr
    assert "composed opt" in result.stderr  # the table of differences
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_model_without_the_protocol(tmp_path, tiny_ref):
    result = CliRunner().invoke(cli, ["to-onnx", tiny_ref, "--split", "-o", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "cannot be split: it has no split_parts() method" in result.stderr
    assert "implement split_parts() returning mmexport.models.split_protocol.SplitParts" in result.stderr


def test_simplify_is_refused_with_split(tmp_path):
    result = CliRunner().invoke(cli, ["to-onnx", "--split", "--simplify", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--simplify is not available with --split" in result.stderr


def test_bench_reports_the_pipeline_and_each_part(fusion_split):
    args = ["bench", str(fusion_split.folder), "--iterations", "3", "--warmup", "0", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = [line.split()[1] for line in result.stdout.splitlines()[2:] if line.startswith("opt")]
    assert rows == ["fusion/", "fusion/image", "fusion/text", "fusion/audio", "fusion/fuse"]


def test_a_failed_export_keeps_the_earlier_one(tmp_path):
    out = tmp_path / "tiny"
    first = CliRunner().invoke(cli, ["to-onnx", f"{MODELS}:tiny", "--split", "-o", str(out), "-q", *FAST])
    assert first.exit_code == 0, first.output
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    failed = CliRunner().invoke(
        cli, ["to-onnx", f"{MODELS}:disagreeing", "--split", "-o", str(out), "-q", *FAST]
    )
    assert failed.exit_code == 1 and "composed parity gate failed" in failed.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]


def test_a_failed_export_removes_the_folders_it_created(tmp_path):
    out = tmp_path / "a" / "b" / "bad"
    result = CliRunner().invoke(
        cli, ["to-onnx", f"{MODELS}:disagreeing", "--split", "-o", str(out), "-q", *FAST]
    )
    assert result.exit_code == 1 and "composed parity gate failed" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_onnx_file_name_as_the_split_output_is_refused(tmp_path):
    result = CliRunner().invoke(cli, ["to-onnx", "--split", "-o", str(tmp_path / "model.onnx")])
    assert result.exit_code == 2
    assert "with --split, -o names a folder (e.g. -o fusion/), not an ONNX file" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bench_of_the_current_folder_labels_it_by_name(fusion_split, monkeypatch):
    monkeypatch.chdir(fusion_split.folder)
    result = CliRunner().invoke(cli, ["bench", ".", "--iterations", "2", "--warmup", "0", "-q"])
    assert result.exit_code == 0, result.output
    rows = [line.split()[1] for line in result.stdout.splitlines()[2:] if line.startswith("opt")]
    assert rows == ["fusion/", "fusion/image", "fusion/text", "fusion/audio", "fusion/fuse"]


def test_without_split_a_folder_as_output_is_still_a_usage_error(tmp_path, tiny_ref):
    """-o takes folders only with --split: without it, an existing folder is refused as before."""
    result = CliRunner().invoke(cli, ["to-onnx", tiny_ref, "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "is a directory" in result.stderr
