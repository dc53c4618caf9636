"""Non-finite float inputs are made visible for every precision: an INT8 model turns NaN into a
confident answer, so ``mmexport run`` warns on the inputs themselves, not only on its outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli
from mmexport.runtime import Session
from mmexport.runtime.validation import non_finite_inputs
from runtime.onnx_models import feeds


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model (TorchScript exporter, ~2 s) and its INT8 variant (4 samples): the model
    whose INT8 outputs were reported finite and confident for a NaN image."""
    from mmexport.export import to_onnx
    from mmexport.export.onnx_export import ExportConfig
    from mmexport.export.parity import ParityConfig
    from mmexport.models.registry import DEFAULT_MODEL
    from mmexport.precision.stages import CalibrationConfig, calibrate

    folder = tmp_path_factory.mktemp("int8")
    export = ExportConfig(exporter="torchscript", opset=17)
    fp32 = to_onnx(
        DEFAULT_MODEL, folder / "model.onnx", export=export, parity=ParityConfig(random_points=0)
    ).path
    config = CalibrationConfig(method="minmax", samples=4, batch_size=2, sensitivity=False)
    return calibrate(fp32, folder / "model.int8.onnx", config=config, eval_samples=0).path


def _feeds(model: Path) -> dict[str, np.ndarray]:
    """Random feeds at the spec's opt dims, batch 2."""
    spec = Session(model).spec
    rng = np.random.default_rng(0)
    out = {}
    for i in spec.inputs:
        shape = [2 if d == "batch" else spec.dims[d].opt if isinstance(d, str) else d for d in i.shape]
        if np.dtype(i.dtype).kind == "f":
            out[i.name] = rng.standard_normal(shape).astype(i.dtype)
        else:
            out[i.name] = rng.integers(0, 10, shape).astype(i.dtype)
    return out


@pytest.fixture
def nan_inputs(int8_model: Path, tmp_path: Path) -> Path:
    f = _feeds(int8_model)
    f["image"].flat[0] = np.nan  # one pixel of sample 0
    np.savez(tmp_path / "nan.npz", **f)
    return tmp_path / "nan.npz"


def test_non_finite_inputs_counts_float_feeds_only() -> None:
    f = feeds()
    assert non_finite_inputs(f) == {}
    f["image"] = f["image"].copy()
    f["image"].flat[:3] = [np.nan, np.inf, -np.inf]
    assert non_finite_inputs(f) == {"image": 3}


def test_the_int8_model_hides_nan_and_run_warns_on_the_input(int8_model: Path, nan_inputs: Path) -> None:
    with np.load(nan_inputs) as data:
        f = dict(data)
    fp32 = Session(int8_model.with_name("model.onnx")).run(f)["logits"]
    int8 = Session(int8_model).run(f)["logits"]
    hidden = ~np.isfinite(fp32) & np.isfinite(int8)
    assert hidden.any(), "the silent wrong answer this guards: INT8 values where FP32 shows NaN"
    result = CliRunner().invoke(cli, ["run", str(int8_model), "-i", str(nan_inputs)])
    assert result.exit_code == 0, result.output
    assert "WARNING: non-finite input values (NaN, inf) in 'image' (" in result.stderr
    as_json = CliRunner().invoke(cli, ["run", str(int8_model), "-i", str(nan_inputs), "--json"])
    data = json.loads(as_json.stdout)
    assert data["non_finite_inputs"] == {
        "image": int(np.load(nan_inputs)["image"].size - np.isfinite(np.load(nan_inputs)["image"]).sum())
    }
    assert any("non-finite input values" in note for note in data["notes"])


def test_finite_inputs_give_no_warning(int8_model: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "ok.npz", **_feeds(int8_model))
    result = CliRunner().invoke(cli, ["run", str(int8_model), "-i", str(tmp_path / "ok.npz"), "--json"])
    assert result.exit_code == 0, result.output
    assert "non_finite_inputs" not in json.loads(result.stdout)
    assert "WARNING" not in result.stderr
