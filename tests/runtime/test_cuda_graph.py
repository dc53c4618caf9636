"""onnxruntime's CUDA graphs through ``Session(..., device="cuda", options={"cuda_graph": True})``.

No GPU here: the graph bookkeeping runs on the real CPU onnxruntime (I/O binding, ``OrtValue``
buffers, ``RunOptions``), and ``fake_cuda_ort`` plays what only the CUDA EP does (a replay reuses the
captured buffers whatever the shapes), so that a wrong graph id gives wrong numbers here too.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from mmexport.core.errors import BackendError, InputError
from mmexport.runtime import Session
from mmexport.runtime.backends.onnxrt import cuda_graph
from mmexport.runtime.backends.onnxrt.cuda_graph import CudaGraphs
from runtime.fake_cuda_ort import FakeOrt, install
from runtime.onnx_models import expected_logits, feeds


@pytest.fixture
def fake(monkeypatch):
    return install(monkeypatch, FakeOrt())


def graph_session(path, **kwargs):
    return Session(path, device="cuda", options={"cuda_graph": True}, **kwargs)


def check(out, f):
    np.testing.assert_allclose(out["logits"], expected_logits(**f), rtol=1e-5, atol=1e-5)


def test_graphs_are_enabled_and_outputs_match(fake, tiny_path):
    with graph_session(tiny_path) as s:
        cuda = dict(fake.sessions[-1].providers[0][1])
        assert cuda == {"device_id": 0, "enable_cuda_graph": "1"}
        assert s.describe()["cuda_graph"] is True
        for seed in range(3):  # new values at the same shapes: copied into the captured buffers
            f = feeds(seed=seed)
            check(s.run(f), f)
        assert fake.sessions[-1].runs == ["-1", "1", "1", "1"]  # plain run, capture, replays


def test_each_shape_gets_its_own_graph(fake, tiny_path):
    """onnxruntime replays an id with its captured shapes: ids must follow the shapes."""
    with graph_session(tiny_path) as s:
        shapes = [dict(batch=2), dict(batch=1), dict(batch=2, seq=7), dict(batch=2), dict(batch=1)]
        for seed, dims in enumerate(shapes):
            f = feeds(**dims, seed=seed)
            check(s.run(f), f)
        graphs = s._backend._graphs
        assert graphs.count == 3
        assert sorted(graphs.graph_ids().values()) == ["1", "2", "3"]
        assert "0" not in fake.sessions[-1].runs  # reserved


def test_number_of_graphs_is_bounded(fake, tiny_path, monkeypatch):
    monkeypatch.setattr(cuda_graph, "MAX_GRAPHS", 2)
    with graph_session(tiny_path) as s:
        s.run(feeds(batch=1))
        s.run(feeds(batch=2))
        with pytest.raises(InputError, match=r"would make graph 3; a session captures at most 2") as info:
            s.run(feeds(batch=3))
        assert "image [3, 3, 8, 8]" in str(info.value) and info.value.hint
        check(s.run(feeds(batch=2, seed=5)), feeds(batch=2, seed=5))  # the existing graphs still run


def test_concurrent_calls_get_their_own_results(fake, tiny_path):
    errors: list[BaseException] = []
    with graph_session(tiny_path) as s:

        def worker(batch: int) -> None:
            try:
                for seed in range(25):
                    f = feeds(batch=batch, seed=seed * 10 + batch)
                    check(s.run(f), f)
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(b,)) for b in (1, 2, 2, 3, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        assert s._backend._graphs.count == 3


def test_run_on_device_leaves_outputs_in_the_graph_buffers(fake, tiny_path):
    with graph_session(tiny_path) as s:
        f = feeds()
        out = s.run_on_device(f)
        assert isinstance(out["logits"], ort.OrtValue)
        np.testing.assert_allclose(out["logits"].numpy(), expected_logits(**f), rtol=1e-5, atol=1e-5)
        g = feeds(seed=4)  # OrtValues are copied into the graph's buffers too (device to device on a GPU)
        values = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in g.items()}
        out = s.run_on_device(values)["logits"]
        np.testing.assert_allclose(out.numpy(), expected_logits(**g), rtol=1e-5, atol=1e-5)
        assert s._backend._graphs.count == 1


def test_an_onnxruntime_that_cannot_copy_an_ortvalue_in_says_so(fake, tiny_path, monkeypatch):
    real = ort.OrtValue.update_inplace

    def numpy_only(self, data):  # onnxruntime before 1.32: numpy arrays only
        if not isinstance(data, np.ndarray):
            raise TypeError("update_inplace(): incompatible function arguments")
        return real(self, data)

    monkeypatch.setattr(ort.OrtValue, "update_inplace", numpy_only)
    with graph_session(tiny_path) as s:
        f = feeds()
        check(s.run(f), f)
        with pytest.raises(
            BackendError, match="cannot copy input 'image' \\(OrtValue\\) into the CUDA graph"
        ) as info:
            s.run_on_device({**f, "image": ort.OrtValue.ortvalue_from_numpy(f["image"])})
        assert "pass host arrays" in info.value.hint


def test_cuda_graph_on_the_cpu_is_refused(tiny_path):
    with pytest.raises(BackendError, match=r"cuda_graph needs device 'cuda'.*got device 'cpu'") as info:
        Session(tiny_path, options={"cuda_graph": True})
    assert "--device cuda" in info.value.hint


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"cuda_graph": "yes"}, "cuda_graph must be True or False, got 'yes'"),
        ({"pinned": True}, "unknown option"),
    ],
)
def test_bad_options(fake, tiny_path, options, fragment):
    with pytest.raises(BackendError, match=fragment):
        Session(tiny_path, device="cuda", options=options)


def test_tensorrt_provider_with_cuda_graph_is_refused(tiny_path, monkeypatch):
    fake = FakeOrt()
    fake.get_available_providers = lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider"]  # type: ignore[method-assign]
    install(monkeypatch, fake)
    with pytest.raises(BackendError, match="provider 'tensorrt'"):
        Session(tiny_path, device="cuda", provider="tensorrt", options={"cuda_graph": True})


def test_control_flow_is_refused_by_name(fake, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["out"])],
        "b",
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])],
    )
    node = helper.make_node("If", ["cond"], ["y"], name="choose", then_branch=branch, else_branch=branch)
    model = helper.make_model(
        helper.make_graph([node], "g", [x], [y], [cond]), opset_imports=[helper.make_opsetid("", 17)]
    )
    path = tmp_path / "if.onnx"
    onnx.save(model, str(path))
    with pytest.raises(
        BackendError, match=r"cuda_graph cannot capture if.onnx: it has control flow \(If 'choose'\)"
    ):
        graph_session(path)
    assert not fake.sessions  # refused before onnxruntime opened anything
    Session(path, device="cuda").close()  # without graphs it opens


def test_capture_failure_is_one_line_naming_the_cause(tiny_path, monkeypatch):
    fake = install(monkeypatch, FakeOrt(fail_capture=True))
    with graph_session(tiny_path) as s:
        with pytest.raises(
            BackendError, match="cannot capture a CUDA graph: This session cannot use"
        ) as info:
            s.run(feeds())
        assert "\n" not in str(info.value) and "CUDA execution provider" in info.value.hint
        assert s._backend._graphs.count == 0  # the failed shapes hold no slot
    assert fake.sessions[-1].runs == ["-1", "1"]


def test_graphs_on_the_real_io_binding(tiny_path):
    """The bookkeeping on onnxruntime's real binding and OrtValue API (CPU buffers)."""
    session = ort.InferenceSession(str(tiny_path), providers=["CPUExecutionProvider"])
    graphs = CudaGraphs(ort, session, ["image", "tokens"], ["logits"], device="cpu")
    for dims in (dict(batch=2), dict(batch=4, seq=3), dict(batch=2)):
        f = feeds(**dims, seed=dims["batch"])
        f["image"] = np.asfortranarray(f["image"])  # copied in C order
        check(graphs.run(f), f)
        out = graphs.run_on_device(f)["logits"]
        np.testing.assert_allclose(out.numpy(), expected_logits(**f), rtol=1e-5, atol=1e-5)
    assert graphs.graph_ids() == {((2, 3, 8, 8), (2, 5)): "1", ((4, 3, 8, 8), (4, 3)): "2"}


@pytest.mark.parametrize(("debug", "level"), [(False, 3), (True, 2)])
def test_default_logger_is_quiet_unless_debugging(fake, tiny_path, debug, level):
    logger = logging.getLogger("mmexport")
    old = logger.level
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    try:
        Session(tiny_path, device="cuda").close()
    finally:
        logger.setLevel(old)
    assert fake.severities[-1] == level


def test_refusal_when_the_session_opens_is_one_line(tiny_path, monkeypatch):
    install(monkeypatch, FakeOrt(refuse_at_open=True))
    with pytest.raises(
        BackendError, match=r"cuda_graph cannot capture tiny.onnx: This session cannot"
    ) as info:
        graph_session(tiny_path)
    assert "\n" not in str(info.value) and "CUDA execution provider" in info.value.hint
    Session(tiny_path, device="cuda").close()  # without graphs it opens
