"""Typed manifest sections: the JSON on disk is what it was, and old manifests still read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mmexport.core.manifest import (
    LIBRARIES,
    ArtifactKind,
    CalibrationMethod,
    Manifest,
    Precision,
    Producer,
    Source,
    Validation,
    read_manifest,
)
from mmexport.core.spec import ModelSpec
from mmexport.precision.stats import METHODS
from runtime.onnx_models import SPEC

# sections as earlier mmexport versions wrote them (to-onnx, calibrate, build, --spec, split part)
OLD_SECTIONS: list[dict[str, Any]] = [
    {
        "source": {"model": "fusion", "builtin": True},
        "producer": {
            "tool": "mmexport",
            "version": "0.1.0",
            "stage": "to-onnx",
            "exporter": "dynamo",
            "opset": 18,
            "external_data": None,
            "simplified": False,
            "versions": {"python": "3.11.7", "torch": "2.5.0", "onnx": "1.17.0", "onnxslim": None},
        },
        "validation": {"parity": {"provider": "CPUExecutionProvider", "passed": True, "rows": []}},
    },
    {
        "source": {"model": "fusion", "builtin": True, "onnx": "model.onnx", "onnx_sha256": "a" * 64},
        "producer": {
            "tool": "mmexport",
            "version": "0.1.0",
            "stage": "calibrate",
            "method": "entropy",
            "percentile": None,
            "calibration_cache": {"file": "model.int8.calib", "trt_version": "10.3"},
            "versions": {"python": "3.11.7", "onnx": "1.17.0", "onnxruntime": "1.20.0"},
        },
        "validation": {"sensitivity": [{"branch": "image"}], "accuracy": {"variants": []}},
    },
    {
        "source": {"model": "x.py:build", "builtin": False, "onnx": "m.onnx", "onnx_sha256": "b" * 64},
        "producer": {
            "tool": "mmexport",
            "version": "0.1.0",
            "stage": "build",
            "engine": {"precision": "fp16"},
        },
        "validation": {},
    },
    {
        "source": {"onnx": "f.onnx", "manifest": "built from --spec (not exported by mmexport)"},
        "producer": {"engine": {"a": 1}},
        "validation": {"fp16_check": {"variants": []}, "something_new": [1, 2]},
    },
    {
        "source": {"model": "m.py:b", "part": "image", "composition": "composition.json", "later": 1},
        "producer": {"stage": 7, "versions": "odd"},
        "validation": {"parity": None},
    },
]


@pytest.mark.parametrize("sections", OLD_SECTIONS, ids=["to-onnx", "calibrate", "build", "foreign", "odd"])
def test_old_sections_read_and_write_back_unchanged(tmp_path: Path, sections: dict[str, Any]) -> None:
    manifest = Manifest("onnx", "m.onnx", "c" * 64, ModelSpec.from_dict(SPEC), "fp32")
    data = {**manifest.to_dict(), **sections}
    path = tmp_path / "m.onnx"
    Path(f"{path}.json").write_text(json.dumps(data))
    read = read_manifest(path)
    assert read is not None
    assert json.dumps(read.to_dict()) == json.dumps(data)  # same keys, values and order


def test_typed_reads() -> None:
    producer = Producer.from_dict(OLD_SECTIONS[1]["producer"])
    assert producer.stage == "calibrate" and producer.details["method"] == "entropy"
    assert producer.calibration_cache == {"file": "model.int8.calib", "trt_version": "10.3"}
    assert producer.external_data is None and producer.exporter is None
    assert Producer.from_dict(OLD_SECTIONS[0]["producer"]).exporter == "dynamo"
    source = Source.from_dict(OLD_SECTIONS[0]["source"])
    assert source.builtin_name == "fusion" and Source(model="x.py:b", builtin=False).builtin_name is None
    derived = source.derived("model.onnx", "d" * 64)
    assert derived.to_dict() == {
        "model": "fusion",
        "builtin": True,
        "onnx": "model.onnx",
        "onnx_sha256": "d" * 64,
    }
    validation = Validation.from_dict(OLD_SECTIONS[3]["validation"])
    assert validation.fp16_check == {"variants": []} and validation.parity is None
    assert validation.extra == {"something_new": [1, 2]}


def test_one_producer_factory_with_one_library_list() -> None:
    producer = Producer.current("fp16", data="synthetic")
    assert producer.tool == "mmexport" and producer.stage == "fp16"
    assert producer.versions is not None and set(producer.versions) == {"python", *LIBRARIES}
    assert producer.versions["onnxruntime"]  # onnxruntime or onnxruntime-gpu, whichever is installed
    assert list(producer.to_dict()) == ["tool", "version", "stage", "data", "versions"]


def test_enums_are_their_values() -> None:
    assert Precision.INT8 == "int8" and f"{Precision.FP16}" == "fp16" and str(ArtifactKind.ENGINE) == "engine"
    assert f"{Precision.FP32:<6}|" == "fp32  |"
    assert (
        json.dumps({"p": Precision.FP16, "m": CalibrationMethod.PERCENTILE})
        == '{"p": "fp16", "m": "percentile"}'
    )
    assert [m.value for m in CalibrationMethod] == ["minmax", "entropy", "percentile"] == list(METHODS)
