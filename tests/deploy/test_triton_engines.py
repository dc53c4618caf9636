"""``mmexport triton`` on TensorRT engines built by ``mmexport build`` against the fake TensorRT.

The fake cuda-python's GPU decides the compute capability each engine manifest records; the
configs are parsed with Triton's schema (``tritonclient``'s ``model_config_pb2``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from mmexport.core.errors import ArtifactError
from mmexport.deploy.triton import triton_repository
from mmexport.deploy.triton_artifacts import read_artifacts
from mmexport.deploy.triton_model import TritonError, TritonOptions, make_model
from mmexport.trt.build_options import BuildOptions
from mmexport.trt.build_stage import build_engine
from mmexport.trt.targets import get_target
from runtime.onnx_models import write_tiny
from trt.fakes import VERSIONS, cuda_runtime, fake_tensorrt


@pytest.fixture(params=VERSIONS, ids=lambda v: f"trt{v.split('.')[0]}")
def gpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> cuda_runtime.FakeCudaState:
    """A fake TensorRT of each generation and a fake GPU whose compute capability tests set."""
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(request.param))
    module, state = cuda_runtime.install()
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", module)
    return state


def build(onnx: Path, gpu: cuda_runtime.FakeCudaState, cc: str, **options: Any) -> Path:
    """``mmexport build`` of ``onnx`` on a GPU of compute capability ``cc`` (writes the manifest too)."""
    gpu.major, gpu.minor = (int(x) for x in cc.split("."))
    output = onnx.with_name(f"{onnx.stem}.{cc}.{options.pop('tag', 'gpu')}.engine")
    return build_engine(onnx, output, BuildOptions(target=get_target("gpu"), **options)).path


def parse(path: Path) -> Any:
    return text_format.Parse(path.read_text(), pb.ModelConfig())


def io_of(tensors: Any) -> dict[str, tuple[str, list[int]]]:
    return {t.name: (pb.DataType.Name(t.data_type), list(t.dims)) for t in tensors}


def test_engines_for_two_gpus_get_cc_model_filenames(gpu: cuda_runtime.FakeCudaState, tmp_path: Path) -> None:
    onnx = write_tiny(tmp_path)
    engines = [build(onnx, gpu, "8.7"), build(onnx, gpu, "9.0")]
    result = triton_repository(engines, tmp_path / "repo", TritonOptions(instances=2))
    folder = tmp_path / "repo" / "tiny"  # the names' shared part
    assert result.path == folder
    config = parse(folder / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 8
    assert dict(config.cc_model_filenames) == {"8.7": "model_8.7.plan", "9.0": "model_9.0.plan"}
    assert io_of(config.input) == {"image": ("TYPE_FP32", [3, -1, -1]), "tokens": ("TYPE_INT64", [-1])}
    assert io_of(config.output) == {"logits": ("TYPE_FP32", [4])}
    assert [(pb.ModelInstanceGroup.Kind.Name(g.kind), g.count) for g in config.instance_group] == [
        ("KIND_GPU", 2)
    ]
    for engine, cc in zip(engines, ("8.7", "9.0"), strict=True):
        assert (folder / "1" / f"model_{cc}.plan").read_bytes() == engine.read_bytes()
        assert (folder / f"model_{cc}.plan.json").read_bytes() == Path(f"{engine}.json").read_bytes()
    assert not (folder / "1" / "model.plan").exists()  # no fallback file for a GPU not listed


def test_one_engine_is_model_plan(gpu: cuda_runtime.FakeCudaState, tmp_path: Path) -> None:
    engine = build(write_tiny(tmp_path), gpu, "8.7")
    model = make_model(read_artifacts([engine]))
    assert model.files == {"1/model.plan": engine, "model.plan.json": Path(f"{engine}.json")}
    assert model.config.cc_model_filenames == {}
    assert any("compute capability 8.7" in n for n in model.notes)
    assert "perf_analyzer -m tiny_8_7_gpu --shape image:3,8,8 --shape tokens:5 -b 2" in model.perf_analyzer


def test_notes_and_refusals_follow_what_the_engine_manifest_says_of_its_gpu(
    gpu: cuda_runtime.FakeCudaState, tmp_path: Path
) -> None:
    onnx = write_tiny(tmp_path)
    portable = make_model(read_artifacts([build(onnx, gpu, "8.6", tag="any", hardware_compat="ampere+")]))
    assert any("compute capability 8.0 and newer (built hardware-compatible" in n for n in portable.notes)
    assert not any("runs only on" in n for n in portable.notes)
    old = build(onnx, gpu, "8.7", tag="old")
    manifest = Path(f"{old}.json")
    data = json.loads(manifest.read_text())
    data["producer"]["engine"]["compute_capability"] = "unknown"  # what older builds recorded
    manifest.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=r"does not record the compute capability .* cc_model_filenames"):
        make_model(read_artifacts([old, build(onnx, gpu, "9.0")]))


def test_engine_dims_come_from_its_profiles(gpu: cuda_runtime.FakeCudaState, tmp_path: Path) -> None:
    onnx = write_tiny(tmp_path)
    static = make_model(read_artifacts([build(onnx, gpu, "8.7", static_shapes="opt")]))
    config = static.config
    assert config.max_batch_size == 0 and config.dynamic_batching is None  # batch fixed at opt (2)
    assert {t.name: t.dims for t in config.inputs} == {"image": (2, 3, 8, 8), "tokens": (2, 5)}
    assert {t.name: t.dims for t in config.outputs} == {"logits": (2, 4)}
    assert any("leading dim 'batch' is fixed at 2" in n for n in static.notes)

    gaps = make_model(
        read_artifacts([build(onnx, gpu, "8.7", tag="gaps", static_shapes="opt", profiles=("batch=6",))])
    )
    assert gaps.config.max_batch_size == 6  # profiles accept batch 2 and 6
    # Triton's TensorRT backend uses profile 0 alone unless the instance group lists the profiles
    groups = text_format.Parse(gaps.config.to_pbtxt(), pb.ModelConfig()).instance_group
    assert [list(g.profile) for g in groups] == [["0", "1"]]
    assert not any(g.profile for g in text_format.Parse(config.to_pbtxt(), pb.ModelConfig()).instance_group)
    assert any("accept dim 'batch' in 2..2, 6..6 only" in n for n in gaps.notes)
    with pytest.raises(TritonError, match=r"--max-batch 7: outside the range of dim 'batch' .* 2\.\.6"):
        make_model(
            read_artifacts(
                [build(onnx, gpu, "8.7", tag="gaps2", static_shapes="opt", profiles=("batch=6",))]
            ),
            TritonOptions(max_batch=7),
        )


def test_engines_that_do_not_belong_together_are_refused(
    gpu: cuda_runtime.FakeCudaState, tmp_path: Path
) -> None:
    onnx = write_tiny(tmp_path)
    first = build(onnx, gpu, "8.7")
    with pytest.raises(ArtifactError, match=r"is built for compute capability 8\.7, as .* is"):
        read_artifacts([first, build(onnx, gpu, "8.7", tag="again")])
    with pytest.raises(ArtifactError, match=r"differs from .* in its optimization profiles"):
        read_artifacts([first, build(onnx, gpu, "9.0", static_shapes="opt")])
    with pytest.raises(
        ArtifactError, match=r"an ONNX file or TensorRT engines, not both; got tiny.onnx \(onnx\)"
    ):
        read_artifacts([onnx, first])
    with pytest.raises(ArtifactError, match="is given twice"):
        read_artifacts([first, first])


def test_engine_options_that_make_no_sense_are_refused(
    gpu: cuda_runtime.FakeCudaState, tmp_path: Path
) -> None:
    engines = read_artifacts([build(write_tiny(tmp_path), gpu, "8.7")])
    with pytest.raises(TritonError, match="--kind cpu: TensorRT engines run on GPUs only"):
        make_model(engines, TritonOptions(kind="cpu"))
    with pytest.raises(TritonError, match="--trt-accelerator: applies to ONNX models"):
        make_model(engines, TritonOptions(trt_accelerator=True))


def test_engine_needs_the_onnx_it_was_built_from(gpu: cuda_runtime.FakeCudaState, tmp_path: Path) -> None:
    engine = build(write_tiny(tmp_path), gpu, "8.7")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for path in (engine, Path(f"{engine}.json")):
        shutil.move(path, moved / path.name)
    assert read_artifacts([moved / engine.name])[0].outputs  # found at the path the build recorded
    (tmp_path / "tiny.onnx").write_bytes(b"another model")
    with pytest.raises(ArtifactError, match=r"read from the ONNX it was built from \(tiny.onnx\)"):
        read_artifacts([moved / engine.name])  # the sha256 no longer matches
    engine_alone = tmp_path / "alone.engine"
    engine_alone.write_bytes(b"plan")
    with pytest.raises(ArtifactError, match="has no manifest"):
        read_artifacts([engine_alone])
