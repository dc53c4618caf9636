"""The native TensorRT backend against the fake tensorrt (10.3 and 11.4) and a fake cuda-python.

Fake only, except the tests marked ``trt`` and the build-and-run test taking ``any_trt``: engines
here are plan bytes registered with the fake (``write_engine``), and most tests assert on the
calls the fakes record.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mmexport.core.errors import ArtifactError, BackendError, InputError, MissingDependencyError
from mmexport.runtime import Session
from mmexport.runtime.backends.tensorrt.cuda import DeviceArray
from mmexport.runtime.backends.tensorrt.engine_info import EngineInfo
from mmexport.runtime.backends.tensorrt.loader import Machine, mismatches

from .engines import feeds, score, write_engine
from .fakes.cuda_runtime import FakeCudaTensor, cudaError_t


def calls(trt, what):
    return [details for name, details in trt.calls if name == what]


def test_session_runs_an_engine_through_fake_device_memory(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt))
    assert session.backend_name == "tensorrt" and session.spec_source == "manifest"
    assert [i.name for i in session.inputs] == ["image", "tokens"]
    feed = feeds(batch=2, seq=4)
    out = session.run(feed)
    np.testing.assert_allclose(out["score"], score(feed)["score"], rtol=1e-6)
    assert calls(fake_trt, "set_input_shape") == [("image", (2, 3, 4)), ("tokens", (2, 4))]
    stream = calls(fake_trt, "execute_async_v3")[0]
    assert type(stream) is int  # TensorRT takes the handle, not cuda-python's stream object
    assert [int(a[-1]) for n, a in fake_cuda.calls if n == "cudaMemcpyAsync"] == [stream] * 3
    assert [type(h) for _, h in calls(fake_trt, "set_optimization_profile_async")] == [int]
    described = session.describe()
    assert described["backend"] == "tensorrt" and described["compute_capability"] == "9.0"
    assert described["precision"] == "fp16"
    session.close()
    assert fake_cuda.device == {} and fake_cuda.streams == set()


def test_validation_happens_before_the_engine(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt))
    with pytest.raises(InputError, match="dim 'batch'"):
        session.run(feeds(batch=9))
    assert calls(fake_trt, "execute_async_v3") == []


def test_profile_selection_and_shapes_set_only_on_change(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt))
    for batch in (2, 2, 6, 3):
        feed = feeds(batch=batch, seq=5, seed=batch)
        np.testing.assert_allclose(session.run(feed)["score"], score(feed)["score"], rtol=1e-6)
    assert [p for p, _ in calls(fake_trt, "set_optimization_profile_async")] == [0, 1, 0]
    assert [s for n, s in calls(fake_trt, "set_input_shape") if n == "image"] == [
        (2, 3, 4),
        (6, 3, 4),
        (3, 3, 4),
    ]


def test_device_buffers_only_grow(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt))
    for batch in (4, 2, 4):
        session.run(feeds(batch=batch))
    assert len([n for n, _ in fake_cuda.calls if n == "cudaMalloc"]) == 3  # one per tensor, once


def test_outputs_left_on_the_device_and_torch_tensors_as_inputs(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt))
    feed = feeds(batch=3)
    result = session.run_on_device(feed)
    assert isinstance(result["score"], DeviceArray) and result["score"].shape == (3,)
    np.testing.assert_allclose(result["score"].numpy(), score(feed)["score"], rtol=1e-6)
    # an input already on the device is used in place (zero copy): no H2D copy for it
    image_ptr = fake_cuda.next_device
    fake_cuda.device[image_ptr] = np.zeros(feed["image"].nbytes, np.uint8)
    fake_cuda.next_device += 1 << 20
    fake_cuda.write(image_ptr, feed["image"])
    tensor = FakeCudaTensor(image_ptr, feed["image"].shape, "torch.float32")
    before = len(fake_cuda.calls)
    chained = session.run_on_device({"image": tensor, "tokens": feed["tokens"]})
    np.testing.assert_allclose(chained["score"].numpy(), score(feed)["score"], rtol=1e-6)
    assert ("image", image_ptr) in calls(fake_trt, "set_tensor_address")
    h2d = [a for n, a in fake_cuda.calls[before:] if n == "cudaMemcpyAsync" and a[3] == 1]
    assert len(h2d) == 1  # tokens only
    with pytest.raises(InputError, match="dtype must be float32"):
        session.run_on_device(
            {"image": FakeCudaTensor(image_ptr, (3, 3, 4), "torch.int64"), "tokens": feed["tokens"]}
        )


def test_cuda_graph_capture_replay_and_recapture(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt), options={"cuda_graph": True})
    engine = next(iter(fake_trt.fake.engines.values()))
    for seed in range(3):  # same shape: warm-up + capture, then two replays with new data
        feed = feeds(batch=2, seed=seed)
        np.testing.assert_allclose(session.run(feed)["score"], score(feed)["score"], rtol=1e-6)
    names = [n for n, _ in fake_cuda.calls]
    assert names.count("cudaStreamBeginCapture") == 1 and names.count("cudaGraphLaunch") == 2
    assert len(calls(fake_trt, "execute_async_v3")) == 2  # warm-up and the captured one
    assert engine.executions == 3
    feed = feeds(batch=5, seed=7)  # shape change: recapture
    np.testing.assert_allclose(session.run(feed)["score"], score(feed)["score"], rtol=1e-6)
    names = [n for n, _ in fake_cuda.calls]
    assert names.count("cudaStreamBeginCapture") == 2 and names.count("cudaGraphExecDestroy") == 1
    session.close()
    assert fake_cuda.execs == {}


def test_pinned_staging_gives_the_same_numbers(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt), options={"pinned": True})
    first, second = feeds(batch=2, seed=1), feeds(batch=2, seed=2)
    a, b = session.run(first)["score"], session.run(second)["score"]
    np.testing.assert_allclose(a, score(first)["score"], rtol=1e-6)  # not overwritten by the next run
    np.testing.assert_allclose(b, score(second)["score"], rtol=1e-6)
    assert any(n == "cudaMallocHost" for n, _ in fake_cuda.calls)


def test_timings_by_phase(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt))
    assert session.timings() is None
    session.run(feeds())
    t = session.timings()
    assert set(t) == {"gpu", "h2d", "compute", "d2h"}
    assert t["gpu"] == pytest.approx(t["h2d"] + t["compute"] + t["d2h"])


def test_unknown_option_is_refused(tmp_path, fake_trt, fake_cuda):
    with pytest.raises(BackendError, match="unknown option"):
        Session(write_engine(tmp_path, fake_trt), options={"graphs": True})


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({"tensorrt_version": "10.0.1"}, "TensorRT 10.0.1 built it"),
        ({"compute_capability": "8.7", "gpu_name": "Orin (nvgpu)"}, "compute capability 8.7"),
        ({"platform": "linux-aarch64-jetson"}, "built on linux-aarch64-jetson, this is linux-x86_64"),
    ],
)
def test_an_engine_for_another_machine_is_refused_with_the_rebuild_command(
    tmp_path, fake_trt, fake_cuda, info, message
):
    path = write_engine(tmp_path, fake_trt, target="jetson-orin", **info)
    with pytest.raises(ArtifactError) as caught:
        Session(path)
    text = str(caught.value)
    assert message in text and "this machine: TensorRT" in text and "NVIDIA H100" in text
    assert f"mmexport build model.fp16.onnx --target jetson-orin -o {path}" in text
    assert calls(fake_trt, "deserialize_cuda_engine") == []


def _info(**fields) -> EngineInfo:
    base = {"tensorrt_version": "10.3.0", "gpu_name": "A", "compute_capability": "8.7"}
    return EngineInfo(**{**base, "platform": "linux-x86_64", "target": "gpu", "precision": "fp16", **fields})


def _here(version: str = "10.3.0", cc: str = "8.7") -> Machine:
    return Machine(version, "B", cc, "linux-x86_64")


def test_version_compatible_and_hardware_compat_relax_the_checks():
    assert mismatches(_info(), _here()) == []
    assert mismatches(_info(), _here("10.3.0.26")) == []
    assert mismatches(_info(), _here("10.4.0"))
    assert mismatches(_info(version_compatible=True), _here("10.4.0")) == []
    assert mismatches(_info(version_compatible=True), _here("10.2.0"))  # older: no
    assert mismatches(_info(version_compatible=True), _here("11.3.0")) == []  # 10.x on 11.x: yes
    assert mismatches(_info(version_compatible=True), _here("12.0.0"))  # another major: no
    assert mismatches(_info(), _here(cc="9.0"))
    assert mismatches(_info(hardware_compat="ampere+"), _here(cc="9.0")) == []
    assert mismatches(_info(hardware_compat="ampere+"), _here(cc="7.5"))
    assert mismatches(_info(hardware_compat="same-cc"), _here(cc="9.0"))


def test_version_compatible_10x_engine_runs_on_tensorrt_11():
    """TensorRT 11 runs version-compatible engines built with 10.x; the reverse never holds."""
    vc = _info(version_compatible=True)
    assert mismatches(vc, _here("11.4.0")) == []
    assert mismatches(vc, _here("11.4.0.106")) == []
    assert mismatches(vc, _here("11.5.1")) == []
    assert mismatches(vc, _here("11.0.0")) == []
    assert "TensorRT 10.x from 10.3.0 on and 11.0+" in mismatches(vc, _here("12.0.0"))[0]
    assert mismatches(_info(version_compatible=True, tensorrt_version="11.4.0"), _here("10.3.0"))
    assert mismatches(_info(), _here("11.4.0"))  # not version-compatible: the same release only


def test_unknown_compute_capability_is_not_compared_but_warned(tmp_path, fake_trt, fake_cuda):
    """Engines from older builds recorded "unknown": they load, with a warning, on any GPU."""
    path = write_engine(tmp_path, fake_trt, gpu_name="unknown", compute_capability="unknown")
    with pytest.warns(UserWarning, match="does not record the GPU's compute capability"):
        session = Session(path)
    np.testing.assert_allclose(session.run(feeds())["score"], score(feeds())["score"], rtol=1e-6)
    assert mismatches(_info(compute_capability="unknown"), _here(cc="9.0")) == []
    assert mismatches(_info(compute_capability="unknown", platform="linux-sbsa"), _here())


def test_tensorrt_runtime_without_a_usable_gpu_is_one_error(tmp_path, fake_trt, fake_cuda):
    path = write_engine(tmp_path, fake_trt)
    fake_trt.fake.no_gpu = True
    with pytest.raises(BackendError, match="runtime could not start: no usable GPU") as caught:
        Session(path)
    assert "\n" not in str(caught.value)


def test_missing_tensorrt_on_a_jetson_points_to_jetpack(tmp_path, fake_trt, fake_cuda, monkeypatch):
    path = write_engine(tmp_path, fake_trt)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr(
        "mmexport.runtime.backends.tensorrt.loader.machine_platform", lambda: "linux-aarch64-jetson"
    )
    with pytest.raises(MissingDependencyError, match="system-site-packages"):
        Session(path)


def test_version_compatible_engine_allows_host_code(tmp_path, fake_trt, fake_cuda):
    Session(write_engine(tmp_path, fake_trt, version_compatible=True))
    assert calls(fake_trt, "deserialize_cuda_engine") == [{"host_code": True}]


def test_engine_without_manifest_or_unreadable_plan(tmp_path, fake_trt, fake_cuda):
    bare = tmp_path / "bare.plan"
    bare.write_bytes(b"x")
    with pytest.raises(ArtifactError, match="has no manifest"):
        Session(bare)
    path = write_engine(tmp_path, fake_trt)
    path.write_bytes(b"corrupt")
    with pytest.raises(BackendError, match="could not deserialize"):
        Session(path)


def test_cuda_errors_are_one_line_backend_errors(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt))
    fake_cuda.fail["cudaMalloc"] = cudaError_t.cudaErrorMemoryAllocation
    with pytest.raises(BackendError, match="cudaMalloc failed: cudaErrorMemoryAllocation"):
        session.run(feeds())


def test_missing_tensorrt_or_cuda_python(tmp_path, fake_trt, fake_cuda, monkeypatch):
    path = write_engine(tmp_path, fake_trt)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    with pytest.raises(MissingDependencyError, match=r"cuda-python.*mmexport\[gpu\]"):
        Session(path)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(MissingDependencyError, match=r"tensorrt.*mmexport\[trt\]"):
        Session(path)


@pytest.mark.trt
def test_real_tensorrt_refuses_a_foreign_engine_before_deserializing(tmp_path: Path, real_trt):
    """With real TensorRT (and cuda-python): an engine claiming another platform is refused."""
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-python is not installed")
    path = write_engine_real(tmp_path, real_trt)
    with pytest.raises(ArtifactError, match="mmexport build"):
        Session(path)


def write_engine_real(folder: Path, trt) -> Path:
    from mmexport.core.files import sha256_file
    from mmexport.core.manifest import Manifest, Producer

    from .engines import SPEC

    path = folder / "foreign.engine"
    path.write_bytes(b"not a plan")
    info = _info(tensorrt_version=trt.__version__, platform="qnx-aarch64", compute_capability="1.0")
    Manifest(
        "engine",
        path.name,
        sha256_file(path),
        SPEC,
        "fp16",
        producer=Producer(details={"engine": info.to_dict()}),
    ).write(path)
    return path


def test_a_built_engine_runs_and_matches_onnxruntime(tmp_path, any_trt):
    """Build the tiny model, run it through Session; on the fakes the plan computes with onnxruntime."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from mmexport.trt.build_options import BuildOptions
    from mmexport.trt.build_stage import build_engine
    from mmexport.trt.targets import get_target

    from .fakes import is_fake
    from .fakes.runtime_api import FakeEngine
    from .test_build import tiny_artifact

    model = tiny_artifact(tmp_path)
    out = tmp_path / "tiny.engine"
    result = build_engine(model, out, BuildOptions(target=get_target("gpu")))
    reference = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    if is_fake(any_trt):
        profiles = [{k: tuple(tuple(s) for s in v) for k, v in p.items()} for p in result.info.profiles]
        any_trt.fake.engines[out.read_bytes()] = FakeEngine(
            inputs={"image": ("float32", (-1, 3, 8, 8)), "tokens": ("int64", (-1, -1))},
            outputs={"logits": ("float32", (-1, 3))},
            profiles=profiles,
            compute=lambda feeds: {"logits": reference.run(None, feeds)[0]},
        )
    session = Session(out)
    feed = session.spec.sample_feed({"batch": 3, "seq": 5}, seed=1)
    np.testing.assert_allclose(session.run(feed)["logits"], reference.run(None, feed)[0], rtol=1e-5)
    session.close()
