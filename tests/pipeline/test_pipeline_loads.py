"""One pipeline run reads each artifact once: one parse of each ONNX file, one hash of each file."""

from __future__ import annotations

import sys
from collections import Counter
from importlib import import_module
from pathlib import Path
from typing import Any

import onnx
import pytest

from mmexport.core import files, onnx_file
from mmexport.pipeline import PipelineConfig, run_pipeline

ONNX_FILES = ("model.onnx", "model.fp16.onnx", "model.int8.onnx")


def _count_calls(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, counts: Counter[str]) -> None:
    """Count calls of ``module.name`` by the file name of their first argument, in every mmexport
    module that imported it by name."""
    original = getattr(module, name)

    def counted(path: Any, *args: Any, **kwargs: Any) -> Any:
        counts[Path(str(path)).name] += 1
        return original(path, *args, **kwargs)

    for loaded in list(sys.modules.values()):
        if getattr(loaded, "__name__", "").startswith("mmexport") and getattr(loaded, name, None) is original:
            monkeypatch.setattr(loaded, name, counted)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, Counter[str]]:
    import_module("mmexport.bench.harness")  # every reader of files is imported before patching
    import_module("mmexport.export.stage")
    import_module("mmexport.precision.stages")
    import_module("mmexport.trt.check")
    counts: dict[str, Counter[str]] = {"read_onnx": Counter(), "onnx.load": Counter(), "sha256": Counter()}
    _count_calls(monkeypatch, onnx_file, "read_onnx", counts["read_onnx"])
    _count_calls(monkeypatch, files, "sha256_file", counts["sha256"])
    original_load = onnx.load

    def load(path: Any, *args: Any, **kwargs: Any) -> Any:  # a parse that bypasses the one reader
        counts["onnx.load"][Path(str(path)).name] += 1
        return original_load(path, *args, **kwargs)

    monkeypatch.setattr(onnx, "load", load)
    return counts


@pytest.mark.slow  # the default model's export and parity gate: about a minute on 2 cores
def test_one_pipeline_run_parses_and_hashes_each_file_once(
    tmp_path: Path, counted: dict[str, Counter[str]]
) -> None:
    config = PipelineConfig(
        output=tmp_path / "report", samples=4, eval_samples=4, duration_s=0.05, warmup_s=0.01
    )
    result = run_pipeline(config)
    assert [p.name for p in result.variants] == list(ONNX_FILES)
    # model.onnx: parsed when the export names its dims; the FP16 and INT8 files are written from
    # the protos the stages made, so nothing parses them again
    assert counted["read_onnx"] == Counter({"model.onnx": 1})
    assert counted["onnx.load"] == counted["read_onnx"]  # every parse goes through the one reader
    assert counted["sha256"] == Counter(dict.fromkeys(ONNX_FILES, 1))
