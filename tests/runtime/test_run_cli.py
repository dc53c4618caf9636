"""``mmexport run``: exit codes and one-line messages (click's CliRunner)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli
from runtime.onnx_models import expected_logits, feeds, write_tiny


@pytest.fixture
def files(tmp_path):
    f = feeds()
    np.save(tmp_path / "image.npy", f["image"])
    np.save(tmp_path / "tokens.npy", f["tokens"])
    np.savez(tmp_path / "feeds.npz", **f)
    return tmp_path, f


def _run(*args):
    return CliRunner().invoke(cli, ["run", *map(str, args)])


def test_run_prints_top_k_labels(tiny_path, files):
    folder, _ = files
    result = _run(
        tiny_path, "-i", f"image={folder / 'image.npy'}", "-i", f"tokens={folder / 'tokens.npy'}", "-k", "2"
    )
    assert result.exit_code == 0, result.output
    assert "logits  float32 [2x4]  top 2 labels per row" in result.stdout
    assert result.stdout.count("tone ") == 2  # the token sum dominates in this tiny model


def test_run_npz_json_and_output(tiny_path, files):
    folder, f = files
    out = folder / "out.npz"
    result = _run(tiny_path, "-i", folder / "feeds.npz", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    logits = data["outputs"]["logits"]
    assert logits["shape"] == [2, 4] and logits["top_k"][0][0]["label"] == "tone"
    np.testing.assert_allclose(np.load(out)["logits"], expected_logits(**f), rtol=1e-5, atol=1e-6)


def test_one_sample_npy_gets_a_batch_axis(tiny_path, files):
    folder, f = files
    np.save(folder / "one_image.npy", f["image"][0])
    np.save(folder / "one_tokens.npy", f["tokens"][0])
    result = _run(
        tiny_path, "-i", f"image={folder / 'one_image.npy'}", "-i", f"tokens={folder / 'one_tokens.npy'}"
    )
    assert result.exit_code == 0, result.output
    assert "[1x4]" in result.stdout


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda d: ["-i", f"image={d / 'none.npy'}"], "does not exist"),
        (lambda d: ["-i", f"image={d / 'bad.npy'}"], "cannot be read as a .npy array"),
        (lambda d: ["-i", f"audio={d / 'image.npy'}"], "the model has no input 'audio'"),
        (lambda d: ["-i", str(d / "image.npy")], "give NAME=FILE, or an .npz file"),
        (
            lambda d: ["-i", f"image={d / 'tokens.npy'}", "-i", f"tokens={d / 'tokens.npy'}"],
            "dtype must be float32",
        ),
        (lambda d: ["-i", f"image={d / 'image.npy'}"], "input 'tokens': is missing"),
    ],
)
def test_run_errors_are_one_line(tiny_path, files, make, fragment):
    folder, _ = files
    (folder / "bad.npy").write_bytes(b"not numpy")
    result = _run(tiny_path, *make(folder))
    assert result.exit_code == 1
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")


def test_run_missing_artifact_and_bad_device(tmp_path, tiny_path):
    result = _run(tmp_path / "none.onnx")
    assert result.exit_code == 1 and "none.onnx: does not exist" in result.stderr
    result = _run(tiny_path, "--device", "cuda")
    assert result.exit_code == 1 and "CUDAExecutionProvider is not in this onnxruntime build" in result.stderr
    assert "mmexport[gpu]" in result.stderr


def test_run_bad_input_syntax_is_a_usage_error(tiny_path):
    result = _run(tiny_path, "-i", "image=")
    assert result.exit_code == 2 and "is not NAME=FILE" in result.stderr


def test_run_reads_an_image_file_through_the_spec_preprocess(tmp_path):
    """A PNG becomes one normalized sample (preprocess.load_file), batched to 1."""
    import copy

    from PIL import Image

    from mmexport.core.files import sha256_file
    from mmexport.core.manifest import Manifest
    from mmexport.core.spec import ModelSpec
    from runtime.onnx_models import SPEC

    spec = copy.deepcopy(SPEC)
    spec["inputs"][0]["preprocess"] = {"kind": "image", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    path = write_tiny(tmp_path, manifest=False)
    Manifest("onnx", path.name, sha256_file(path), ModelSpec.from_dict(spec), "fp32").write(path)
    Image.new("RGB", (8, 6), (255, 0, 51)).save(tmp_path / "red.png")
    np.save(tmp_path / "tokens.npy", np.zeros((1, 3), np.int64))
    result = _run(
        path, "-i", f"image={tmp_path / 'red.png'}", "-i", f"tokens={tmp_path / 'tokens.npy'}", "--json"
    )
    assert result.exit_code == 0, result.output
    logits = json.loads(result.stdout)["outputs"]["logits"]["values"][0]
    np.testing.assert_allclose(logits, [1.0, 0.0, 0.2, 0.0], atol=1e-6)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    result = _run(path, "-i", f"image={tmp_path / 'broken.png'}", "-i", f"tokens={tmp_path / 'tokens.npy'}")
    assert result.exit_code == 1 and "cannot read 'broken.png' as an image" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (
            lambda d: ["-i", f"image={d / 'image.npy'}", "-i", f"image={d / 'image.npy'}"],
            "input 'image' is given twice",
        ),
        (
            lambda d: ["-i", str(d / "feeds.npz"), "-i", f"tokens={d / 'tokens.npy'}"],
            "input 'tokens' is given twice",
        ),
        (lambda d: ["-i", f"image={d}", "-i", f"tokens={d / 'tokens.npy'}"], "is a folder, not a file"),
    ],
)
def test_run_refuses_an_input_twice_and_a_folder(tiny_path, files, make, fragment):
    folder, _ = files
    result = _run(tiny_path, *make(folder))
    assert result.exit_code == 1, result.output
    assert fragment in result.stderr and "does not exist" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _strict_json(text: str) -> dict:
    def refuse(token: str) -> None:
        raise ValueError(f"invalid JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_run_json_writes_null_for_nan_and_text_marks_it(tiny_path, files):
    folder, f = files
    image = f["image"].copy()
    image[0] = np.nan  # row 0's logits are NaN, row 1's are finite
    np.save(folder / "nan.npy", image)
    args = [tiny_path, "-i", f"image={folder / 'nan.npy'}", "-i", f"tokens={folder / 'tokens.npy'}"]
    result = _run(*args, "--json")
    assert result.exit_code == 0, result.output
    data = _strict_json(result.stdout)
    logits = data["outputs"]["logits"]
    assert logits["non_finite"] == 3 and logits["values"][0][:3] == [None, None, None]
    assert logits["top_k"][0] == [] and logits["top_k"][1][0]["label"] == "tone"
    assert "written as null" in data["notes"][0]
    text = _run(*args)
    assert text.exit_code == 0, text.output
    assert "3 non-finite value(s)" in text.stdout
    assert "[0] not ranked: non-finite scores" in text.stdout


def test_run_takes_a_modality_name_for_its_only_input(tiny_path, files):
    folder, _ = files
    by_modality = _run(
        tiny_path, "-i", f"text={folder / 'tokens.npy'}", "-i", f"image={folder / 'image.npy'}"
    )
    by_name = _run(tiny_path, "-i", f"tokens={folder / 'tokens.npy'}", "-i", f"image={folder / 'image.npy'}")
    assert by_modality.exit_code == 0, by_modality.output
    assert by_modality.stdout == by_name.stdout
