from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).parents[1]
LABELS = ["a", "b", "c", "d", "e"]


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny three-modality model (Conv, Embedding, GRU, Gemm) exported with a labelled output."""
    from mmexport.export import to_onnx
    from tiny_models import TINY_SPEC

    folder = tmp_path_factory.mktemp("tiny")
    spec = copy.deepcopy(TINY_SPEC)
    spec["outputs"] = [{"name": "logits", "labels": LABELS}]
    spec_file = folder / "spec.json"
    spec_file.write_text(json.dumps(spec))
    return to_onnx(f"{TESTS / 'tiny_models.py'}:tiny", folder / "tiny.onnx", spec=spec_file).path


def tiny_feeds(count: int, seed: int = 0, batch: int = 2) -> list[dict[str, np.ndarray]]:
    """Valid feeds of the tiny model at a few shapes."""
    rng = np.random.default_rng(seed)
    feeds = []
    for i in range(count):
        h = 8 + 4 * (i % 3)
        feeds.append(
            {
                "image": rng.normal(size=(batch, 3, h, h)).astype(np.float32),
                "tokens": rng.integers(0, 20, size=(batch, 3 + i % 4)).astype(np.int64),
                "imu": rng.normal(size=(batch, 4 + i % 5, 6)).astype(np.float32),
            }
        )
    return feeds
