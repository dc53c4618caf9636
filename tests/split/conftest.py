"""Split exports of the built-in models, made once per test session on narrowed specs (the same
models and weights; smaller dim ranges keep the parity gates fast) with torch's TorchScript
exporter, which takes a tenth of dynamo's time here. The default (dynamo, full specs) runs in the
slow test of test_split_export.py."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mmexport.core.spec import ModelSpec
from mmexport.export import ExportConfig, ParityConfig
from mmexport.models import get_builtin
from mmexport.split.export import SplitResult, to_onnx_split

from .split_models import PAIR_SPEC

if TYPE_CHECKING:
    from conftest import RunOnce

NARROW_DIMS = {
    "batch": {"min": 1, "opt": 2, "max": 4},
    "height": {"min": 32, "opt": 64, "max": 96},
    "width": {"min": 32, "opt": 64, "max": 96},
    "seq": {"min": 1, "opt": 8, "max": 16},
    "frames": {"min": 16, "opt": 40, "max": 80},
}
GATE = ParityConfig(random_points=1, seed=3)
FAST_EXPORT = ExportConfig(exporter="torchscript")


def narrow_spec(name: str) -> ModelSpec:
    data = copy.deepcopy(get_builtin(name).spec_data)
    data["dims"] = {k: dict(NARROW_DIMS[k]) for k in data["dims"]}
    return ModelSpec.from_dict(data)


def _split(name: str, folder: Path) -> SplitResult:
    return to_onnx_split(name, folder, spec=narrow_spec(name), parity=GATE, export=FAST_EXPORT)


@pytest.fixture(scope="session")
def fusion_split(run_once: RunOnce) -> SplitResult:
    """The built-in ``fusion`` split on its narrowed spec, once per run (read-only: see fusion_copy)."""
    return run_once("split-fusion", lambda folder: _split("fusion", folder / "fusion"))


@pytest.fixture(scope="session")
def seed_split(run_once: RunOnce) -> SplitResult:
    """The built-in ``seed`` split on its narrowed spec, once per run (read-only)."""
    return run_once("split-seed", lambda folder: _split("seed", folder / "seed"))


@pytest.fixture
def fusion_copy(fusion_split: SplitResult, tmp_path: Path) -> Path:
    """A copy of the fusion split folder that a test may damage."""
    return Path(shutil.copytree(fusion_split.folder, tmp_path / "fusion"))


@pytest.fixture(scope="session")
def pair_split(run_once: RunOnce) -> SplitResult:
    """The tiny model whose IMU part takes two inputs and gives two outputs (split_models.pair),
    split once per run (read-only)."""
    ref = f"{Path(__file__).parent / 'split_models.py'}:pair"
    spec = ModelSpec.from_dict(PAIR_SPEC)

    def split(folder: Path) -> SplitResult:
        return to_onnx_split(ref, folder / "pair", spec=spec, parity=GATE, export=FAST_EXPORT)

    return run_once("split-pair", split)
