"""The native TensorRT runner where real engines and CUDA differ from the easy path: DLA cores,
data-dependent and shape-tensor I/O, device feeds (alignment, the caller's stream), threads,
errors the bindings raise, bfloat16, a failed CUDA-graph capture and close during a run."""

from __future__ import annotations

import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from mmexport.core.errors import ArtifactError, BackendError, InputError
from mmexport.runtime import Session
from mmexport.runtime.backends.tensorrt.cuda import device_meta
from mmexport.runtime.backends.tensorrt.tensors import read_tensors

from .engines import feeds, score, write_engine
from .fakes.cuda_runtime import FakeCudaTensor


def engine_of(trt):
    return list(trt.fake.engines.values())[-1]


def device_copy(cuda_module, array: np.ndarray) -> int:
    """A fresh device allocation holding ``array`` (cudaMalloc: 256-byte aligned)."""
    _err, ptr = cuda_module.cudaMalloc(array.nbytes)
    cuda_module.fake.write(ptr, array)
    return ptr


def test_engine_built_for_dla_core_1_is_deserialized_with_core_1_selected(tmp_path, fake_trt, fake_cuda):
    fake_trt.fake.dla_cores = 2
    Session(write_engine(tmp_path, fake_trt, dla_core=1)).close()
    assert engine_of(fake_trt).dla_core == 1  # what the engine captured: the runtime's core


def test_engine_for_a_dla_core_the_machine_lacks_is_refused(tmp_path, fake_trt, fake_cuda):
    fake_trt.fake.dla_cores = 1
    with pytest.raises(ArtifactError, match=r"built for DLA core 1, this machine has 1 DLA core"):
        Session(write_engine(tmp_path, fake_trt, dla_core=1))


def test_data_dependent_output_is_refused_with_its_name(tmp_path, fake_trt, fake_cuda):
    path = write_engine(tmp_path, fake_trt)
    engine_of(fake_trt).data_dependent = frozenset({"score"})
    session = Session(path)
    with pytest.raises(BackendError, match=r"output 'score' has a data-dependent shape \[-1\]"):
        session.run(feeds())
    assert [n for n, _ in fake_trt.calls if n == "execute_async_v3"] == []


def test_shape_tensor_input_is_refused_at_load(tmp_path, fake_trt, fake_cuda):
    path = write_engine(tmp_path, fake_trt)
    engine_of(fake_trt).shape_io = frozenset({"tokens"})
    with pytest.raises(ArtifactError, match=r"input 'tokens' is a shape tensor"):
        Session(path)
    assert fake_cuda.device == {} and fake_cuda.streams == set()


def test_misaligned_device_input_is_refused_naming_it(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt))
    feed = feeds(batch=3)
    big = np.concatenate([feed["image"][:1], feed["image"]])
    ptr = device_copy(sys.modules["cuda.bindings.runtime"], big)
    sliced = FakeCudaTensor(ptr + feed["image"][0].nbytes, feed["image"].shape, "torch.float32")  # t[1:]
    with pytest.raises(InputError, match=r"image.*0x[0-9a-f]+ is not 256-byte aligned"):
        session.run_on_device({"image": sliced, "tokens": feed["tokens"]})


def test_torch_feed_is_read_after_the_work_on_torchs_current_stream(
    tmp_path, fake_trt, fake_cuda, monkeypatch
):
    cuda = sys.modules["cuda.bindings.runtime"]
    session = Session(write_engine(tmp_path, fake_trt))
    feed = feeds(batch=2, seed=3)
    _err, torch_stream = cuda.cudaStreamCreate()
    _err, ptr = cuda.cudaMalloc(feed["image"].nbytes)
    fake_cuda.enqueue(int(torch_stream), lambda: fake_cuda.write(ptr, feed["image"]))  # still queued
    torch = SimpleNamespace(
        Tensor=FakeCudaTensor,
        cuda=SimpleNamespace(current_stream=lambda device: SimpleNamespace(cuda_stream=int(torch_stream))),
    )
    monkeypatch.setitem(sys.modules, "torch", torch)
    tensor = FakeCudaTensor(ptr, feed["image"].shape, "torch.float32")
    out = session.run_on_device({"image": tensor, "tokens": feed["tokens"]})
    np.testing.assert_allclose(out["score"].numpy(), score(feed)["score"], rtol=1e-6)
    assert any(n == "cudaStreamWaitEvent" for n, _ in fake_cuda.calls)


def test_a_runner_on_gpu_1_runs_from_another_thread(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt), device="cuda:1")
    results: list[object] = []

    def work() -> None:  # a new thread starts on device 0
        try:
            results.append(session.run(feeds(batch=2)))
        except Exception as e:  # reported below
            results.append(e)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert isinstance(results[0], dict), results[0]
    np.testing.assert_allclose(results[0]["score"], score(feeds(batch=2))["score"], rtol=1e-6)


def test_profile_switch_raising_becomes_a_backend_error(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt))
    session.run(feeds(batch=2))
    fake_trt.fake.profiles_in_use.add(1)  # e.g. another context of the engine holds profile 1
    with pytest.raises(BackendError, match=r"cannot select optimization profile 1: Error in set optim"):
        session.run(feeds(batch=6))


def test_bfloat16_io_is_refused_clearly_without_ml_dtypes(tmp_path, fake_trt, fake_cuda, monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # numpy alone has no bfloat16
    path = write_engine(tmp_path, fake_trt)
    engine_of(fake_trt).outputs = {"score": ("bfloat16", (-1,))}
    with pytest.raises(ArtifactError, match=r"tensor 'score' is bfloat16.*'ml_dtypes' package"):
        Session(path)


def test_bfloat16_io_maps_to_ml_dtypes_bfloat16(tmp_path, fake_trt, fake_cuda):
    """With ml_dtypes (onnx depends on it) a BF16 engine tensor and a torch bfloat16 feed share
    one numpy dtype, so the runner's dtype check compares them."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    path = write_engine(tmp_path, fake_trt)
    engine_of(fake_trt).outputs = {"score": ("bfloat16", (-1,))}
    runtime = fake_trt.Runtime(fake_trt.Logger())
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    score_tensor = read_tensors(fake_trt, engine, path)[-1]
    assert score_tensor.dtype == np.dtype(ml_dtypes.bfloat16)
    meta = device_meta(FakeCudaTensor(0, (2,), "torch.bfloat16"))
    assert meta == ((2,), score_tensor.dtype)


def test_failed_graph_capture_reports_the_launch_not_the_capture(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt), options={"cuda_graph": True})
    fake_trt.fake.fail_execute_when_capturing = True
    with pytest.raises(BackendError, match="execute_async_v3 failed"):
        session.run(feeds())
    assert fake_cuda.capturing == {}  # the capture was ended


def test_close_waits_for_a_run_in_flight(tmp_path, fake_trt, fake_cuda):
    session = Session(write_engine(tmp_path, fake_trt))
    runner = session._backend
    with runner._lock:  # a run holds the lock
        closer = threading.Thread(target=session.close)
        closer.start()
        closer.join(timeout=0.2)
        assert closer.is_alive() and fake_cuda.streams  # nothing freed under the run
    closer.join()
    assert fake_cuda.streams == set() and fake_cuda.device == {}
    session.close()  # again: nothing left to free
