"""Engine files for the native backend's tests: plan bytes registered with the fake, plus a manifest."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from mmexport.core.files import sha256_file
from mmexport.core.manifest import Manifest, Producer
from mmexport.core.spec import ModelSpec
from mmexport.runtime.backends.tensorrt.engine_info import EngineInfo

from .fakes.runtime_api import FakeEngine

SPEC = ModelSpec.from_dict(
    {
        "inputs": [
            {"name": "image", "modality": "image", "dtype": "float32", "shape": ["batch", 3, 4]},
            {
                "name": "tokens",
                "modality": "text",
                "dtype": "int64",
                "shape": ["batch", "seq"],
                "range": [0, 9],
            },
        ],
        "outputs": ["score"],
        "dims": {"batch": {"min": 1, "opt": 2, "max": 8}, "seq": {"min": 2, "opt": 4, "max": 16}},
    }
)
# Two profiles, as `mmexport build --profile` makes: small batches, then large ones.
PROFILES = [
    {"image": ((1, 3, 4), (2, 3, 4), (4, 3, 4)), "tokens": ((1, 2), (2, 4), (4, 16))},
    {"image": ((5, 3, 4), (8, 3, 4), (8, 3, 4)), "tokens": ((5, 2), (8, 4), (8, 16))},
]


def score(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"score": feeds["image"].sum(axis=(1, 2)) + feeds["tokens"].sum(axis=1).astype(np.float32)}


def fake_engine() -> FakeEngine:
    return FakeEngine(
        inputs={"image": ("float32", (-1, 3, 4)), "tokens": ("int64", (-1, -1))},
        outputs={"score": ("float32", (-1,))},
        profiles=PROFILES,
        compute=score,
    )


def write_engine(folder: Path, trt: ModuleType, name: str = "model.engine", **info: Any) -> Path:
    """An engine file the fake deserializes and its manifest; ``info`` overrides EngineInfo fields."""
    path = folder / name
    plan = f"plan:{name}:{len(trt.fake.engines)}".encode()
    path.write_bytes(plan)
    trt.fake.engines[plan] = fake_engine()
    fields: dict[str, Any] = {
        "tensorrt_version": trt.__version__,
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "compute_capability": "9.0",
        "platform": "linux-x86_64",
        "target": "gpu",
        "precision": "fp16",
        "source_onnx": "model.fp16.onnx",
    }
    fields.update(info)
    Manifest(
        kind="engine",
        artifact=name,
        sha256=sha256_file(path),
        spec=SPEC,
        precision=fields["precision"],
        producer=Producer(details={"engine": EngineInfo(**fields).to_dict()}),
    ).write(path)
    return path


def feeds(batch: int = 2, seq: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    return SPEC.sample_feed({"batch": batch, "seq": seq}, seed=seed)
