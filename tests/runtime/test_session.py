from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from mmexport.core.errors import ArtifactError, BackendError, InputError
from mmexport.runtime import Session, backend_names
from mmexport.runtime.backends.base import BackendConfig
from mmexport.runtime.backends.onnxrt.loader import profile_options, provider_list, resolve_provider
from runtime.onnx_models import expected_logits, feeds, tiny_graph, write_tiny
from trt.conftest import fake_cuda_fixture, fake_trt  # noqa: F401  (fixtures)
from trt.engines import feeds as engine_feeds
from trt.engines import write_engine


def test_runs_and_describes(session, tiny_path):
    f = feeds()
    out = session.run(f)
    assert list(out) == ["logits"]
    np.testing.assert_allclose(out["logits"], expected_logits(**f), rtol=1e-5, atol=1e-6)
    assert session.backend_name == "onnxrt" and session.spec_source == "manifest"
    assert session.input_names == ["image", "tokens"] and session.output_names == ["logits"]
    assert session.outputs[0].labels == ("red", "green", "blue", "tone")
    info = session.describe()
    assert info["provider"] == "CPUExecutionProvider" and info["precision"] == "fp32"


def test_without_manifest_the_graph_gives_the_spec(tmp_path):
    path = write_tiny(tmp_path, manifest=False)
    with Session(path) as s:
        assert s.spec_source == "graph" and s.manifest is None
        assert s.spec.input("image").shape == ("batch", 3, "height", "width")
        assert s.run(feeds(height=40))["logits"].shape == (2, 4)  # no ranges without a manifest
        with pytest.raises(InputError, match="axis 1 must be 3"):
            s.run({**feeds(), "image": np.zeros((2, 2, 8, 8), np.float32)})
        with pytest.raises(InputError, match="dim 'batch'"):
            s.run({**feeds(batch=2), "tokens": np.zeros((3, 5), np.int64)})


def test_unnamed_dynamic_axes_get_their_own_dims(tmp_path):
    import onnx

    path = tmp_path / "anon.onnx"
    onnx.save(tiny_graph(dynamic_names=False), str(path))
    s = Session(path)
    assert s.spec.input("tokens").shape == ("tokens.0", "tokens.1")
    assert s.run(feeds())["logits"].shape == (2, 4)


def test_manifest_that_does_not_match_the_graph(tmp_path):
    path = write_tiny(tmp_path)
    manifest = json.loads(path.with_name("tiny.onnx.json").read_text())
    manifest["spec"]["inputs"][1]["dtype"] = "int32"
    path.with_name("tiny.onnx.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"'tokens' is int32 .* in the manifest but int64"):
        Session(path)


def test_sha256_check_on_request(tmp_path):
    path = write_tiny(tmp_path)
    manifest = json.loads(path.with_name("tiny.onnx.json").read_text())
    manifest["sha256"] = "0" * 64
    path.with_name("tiny.onnx.json").write_text(json.dumps(manifest))
    Session(path)
    with pytest.raises(ArtifactError, match="does not match the sha256"):
        Session(path, verify_sha256=True)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"backend": "nope"}, "nope: is not a runtime backend"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"provider": "cuda"}, "provider 'cuda' does not run on device 'cpu'"),
        ({"device": "cuda"}, "CUDAExecutionProvider is not in this onnxruntime build"),
        ({"device": "cuda", "provider": "tensorrt"}, "TensorrtExecutionProvider is not in this"),
    ],
)
def test_backend_errors(tiny_path, kwargs, fragment):
    with pytest.raises(BackendError) as info:
        Session(tiny_path, **kwargs)
    assert fragment in str(info.value)


def test_files_that_cannot_be_loaded(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        Session(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(ArtifactError, match="onnxruntime cannot load it"):
        Session(bad)
    other = tmp_path / "m.bin"
    other.write_bytes(b"x")
    with pytest.raises(BackendError, match=r"no runtime backend reads 'm\.bin'"):
        Session(other)


def test_registry_names():
    assert "onnxrt" in backend_names()


def test_tensorrt_ep_options_come_from_the_spec(session, tiny_path):
    config = BackendConfig(device="cuda", device_id=1, provider="tensorrt")
    providers = provider_list(resolve_provider(config), tiny_path, session.spec, config)
    name, options = providers[0]
    assert name == "TensorrtExecutionProvider"
    assert options["trt_profile_min_shapes"] == "image:1x3x4x4,tokens:1x1"
    assert options["trt_profile_opt_shapes"] == "image:2x3x8x8,tokens:2x5"
    assert options["trt_profile_max_shapes"] == "image:8x3x16x16,tokens:8x12"
    assert options["trt_engine_cache_enable"] is True
    assert options["trt_engine_cache_path"] == f"{tiny_path}.trt-cache"
    assert options["device_id"] == 1
    assert providers[1] == ("CUDAExecutionProvider", {"device_id": 1})
    assert set(profile_options(session.spec)) == {f"trt_profile_{c}_shapes" for c in ("min", "opt", "max")}


def test_cuda_runs_with_io_binding(monkeypatch, tiny_path):
    """On CUDA, run_on_device binds host inputs and device outputs; run is onnxruntime's own run,
    which copies in and out itself (recorded, no GPU here)."""
    from mmexport.runtime.backends.onnxrt import runner as runner_mod

    calls = []

    class FakeBinding:
        def bind_cpu_input(self, name, value):
            calls.append(("in", name, value.flags["C_CONTIGUOUS"]))

        def bind_output(self, name, device_type, device_id):
            calls.append(("out", name, device_type, device_id))

        def copy_outputs_to_cpu(self):
            return [np.zeros((2, 4), np.float32)]

        def get_outputs(self):
            return ["device output"]

    class FakeSession:
        def io_binding(self):
            return FakeBinding()

        def run(self, names, feeds, options=None):
            calls.append(("session.run", list(names), sorted(feeds)))
            return [np.zeros((2, 4), np.float32)]

        def run_with_iobinding(self, binding):
            calls.append(("run",))

        def get_inputs(self):
            return [
                type("Arg", (), {"name": "image", "type": "tensor(float)", "shape": ["batch", 3, 8, 8]})()
            ]

        def get_outputs(self):
            return [type("Arg", (), {"name": "logits", "type": "tensor(float)", "shape": ["batch", 4]})()]

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    monkeypatch.setattr(runner_mod, "open_session", lambda path, spec, config: (FakeSession(), "cuda"))
    backend = runner_mod.OnnxrtRunner(tiny_path, None, BackendConfig(device="cuda", device_id=0))
    f = feeds()
    assert backend.run_on_device({"image": f["image"][:, :, ::2], "tokens": f["tokens"]}) == {
        "logits": "device output"
    }
    assert ("in", "image", True) in calls and ("out", "logits", "cuda", 0) in calls and ("run",) in calls
    calls.clear()
    out = backend.run(f)
    assert out["logits"].shape == (2, 4)
    assert calls == [("session.run", ["logits"], ["image", "tokens"])]


def test_onnxruntime_failure_is_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g", [x], [y], [shape])
    path = tmp_path / "reshape.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(BackendError, match="onnxruntime: inference failed") as info:
        Session(path).run({"x": np.zeros((1, 4), np.float32)})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("spin", "entry"), [(False, "0"), (True, "1"), (None, None)])
def test_spin_reaches_onnxruntime(tiny_path, spin, entry):
    from mmexport.runtime.backends.onnxrt.loader import open_session

    session, _ = open_session(tiny_path, None, BackendConfig(spin=spin))
    options = session.get_session_options()
    key = "session.intra_op.allow_spinning"
    if entry is None:  # the library's default: no entry at all
        with pytest.raises(RuntimeError, match="does not have configuration"):
            options.get_session_config_entry(key)
    else:
        assert options.get_session_config_entry(key) == entry
    with Session(tiny_path, spin=False) as spun_down:
        assert spun_down.run(feeds())  # runs the same


def test_onnxruntime_failure_prints_no_log_line_of_its_own(tmp_path, capfd):
    """onnxruntime's coloured ``[E:onnxruntime ...]`` line would repeat our one-line error."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g", [x], [y], [shape])
    path = tmp_path / "reshape.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    session = Session(path)
    capfd.readouterr()
    with pytest.raises(BackendError, match="inference failed"):
        session.run({"x": np.zeros((1, 4), np.float32)})
    assert "onnxruntime" not in capfd.readouterr().err


def test_onnxruntime_warnings_show_with_debug_logging():
    import logging

    from mmexport.runtime.backends.onnxrt.loader import log_severity

    logger = logging.getLogger("mmexport")
    before = logger.level
    try:
        logger.setLevel(logging.WARNING)
        assert log_severity() == 4
        logger.setLevel(logging.DEBUG)
        assert log_severity() == 2
    finally:
        logger.setLevel(before)


def test_unknown_options_and_bad_threads_are_refused(tiny_path):
    with pytest.raises(BackendError, match="unknown option 'bogus'"):
        Session(tiny_path, options={"bogus": 1})
    for threads in (-1, 0):
        with pytest.raises(BackendError, match="threads must be a whole number >= 1"):
            Session(tiny_path, threads=threads)


def test_a_closed_session_refuses_to_run(tiny_path):
    session = Session(tiny_path)
    f = feeds()
    assert session.run(f)["logits"].shape == (2, 4)
    session.close()
    session.close()  # twice is fine
    with pytest.raises(RuntimeError, match=r"^Session\('.*tiny.onnx', backend='onnxrt'\) is closed$"):
        session.run(f)
    with pytest.raises(RuntimeError, match="is closed"):
        session.run_on_device(f)
    assert session.validate(f) is f  # the spec's checks need no backend
    assert session.describe()["providers"] == ["CPUExecutionProvider"]


def test_close_waits_for_the_runs_in_flight(tiny_path):
    session = Session(tiny_path)
    backend, started, release = session._backend, threading.Event(), threading.Event()
    run, closed_while_running = backend.run, []

    def slow_run(f):
        started.set()
        release.wait(10)
        closed_while_running.append(backend._session is None)
        return run(f)

    backend.run = slow_run
    results = []
    worker = threading.Thread(target=lambda: results.append(session.run(feeds())))
    worker.start()
    assert started.wait(10)
    closer = threading.Thread(target=session.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # held back by the run in flight
    release.set()
    worker.join(10)
    closer.join(10)
    assert not closer.is_alive() and closed_while_running == [False]
    assert results[0]["logits"].shape == (2, 4) and backend._session is None
    with pytest.raises(RuntimeError, match="is closed"):
        session.run(feeds())


def test_a_closed_tensorrt_session_touches_no_freed_memory(tmp_path, fake_trt, fake_cuda):  # noqa: F811
    session = Session(write_engine(tmp_path, fake_trt))
    feed = engine_feeds(batch=2)
    session.run(feed)
    session.close()
    calls = len(fake_cuda.calls)
    assert fake_cuda.device == {} and fake_cuda.streams == set()
    session.close()
    for call in (lambda: session.run(feed), lambda: session.run_on_device(feed), session.timings):
        with pytest.raises(RuntimeError, match=r"^Session\(.*model.engine', backend='tensorrt'\) is closed$"):
            call()
    assert len(fake_cuda.calls) == calls  # nothing reached CUDA after close, nor a second free


@pytest.mark.parametrize("given", ["torch.Tensor", "list", "NoneType"])
def test_run_on_device_names_a_feed_of_a_type_it_cannot_take(tiny_path, given):
    import torch

    f = feeds()
    image = {"torch.Tensor": torch.from_numpy(f["image"]), "list": f["image"].tolist(), "NoneType": None}
    with Session(tiny_path) as session:
        with pytest.raises(InputError) as caught:
            session.run_on_device({"image": image[given], "tokens": f["tokens"]})
        accepted = "a numpy.ndarray or an onnxruntime.OrtValue"
        assert str(caught.value).startswith(f"input 'image': must be {accepted}, got {given}")
        assert caught.value.expected == accepted and caught.value.actual == given
        with pytest.raises(InputError, match="feeds must be a dict of input name -> array, got list"):
            session.run_on_device([f["image"], f["tokens"]])


def test_run_on_device_checks_an_ortvalue_like_an_array(tiny_path):
    import onnxruntime

    f = feeds()
    with Session(tiny_path) as session:
        tokens = onnxruntime.OrtValue.ortvalue_from_numpy(f["tokens"].astype(np.int32))
        with pytest.raises(InputError, match=r"input 'tokens': dtype must be int64, got int32"):
            session.run_on_device({"image": f["image"], "tokens": tokens})
        tokens = onnxruntime.OrtValue.ortvalue_from_numpy(f["tokens"])
        with pytest.raises(BackendError, match="run_on_device needs device='cuda'"):  # past the checks
            session.run_on_device({"image": f["image"], "tokens": tokens})


def test_a_tensorrt_session_names_a_feed_it_cannot_take(tmp_path, fake_trt, fake_cuda):  # noqa: F811
    import torch

    session, feed = Session(write_engine(tmp_path, fake_trt)), engine_feeds(batch=2)
    with pytest.raises(
        InputError, match=r"^input 'image': must be a numpy.ndarray, a CUDA torch.Tensor .* got torch.Tensor$"
    ):
        session.run_on_device({**feed, "image": torch.from_numpy(feed["image"])})


def test_an_engine_its_manifest_disagrees_with_releases_what_it_took(tmp_path, fake_trt, fake_cuda):  # noqa: F811
    path = write_engine(tmp_path, fake_trt)
    manifest = path.with_name(f"{path.name}.json")
    data = json.loads(manifest.read_text())
    data["spec"]["inputs"][1]["dtype"] = "int32"  # the engine takes int64
    manifest.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="tokens"):
        Session(path)
    assert fake_cuda.streams == set() and fake_cuda.device == {}
