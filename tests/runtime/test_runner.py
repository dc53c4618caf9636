"""The one runner contract: checks before any implementation runs, close and calls in flight in the
base class, declared capabilities, the ONNX model runner the stages use."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mmexport.core.errors import ArtifactError, BackendError, InputError
from mmexport.core.spec import ModelSpec
from mmexport.runtime import Capability, Runner, Session
from mmexport.runtime.backends.onnxrt.runner import OnnxModelRunner, OnnxrtRunner
from mmexport.runtime.backends.tensorrt.runner import TrtRunner
from runtime.onnx_models import SPEC, expected_logits, feeds, tiny_graph

BAD_FEEDS = {
    "missing input": lambda f: {"image": f["image"]},
    "unknown input": lambda f: {**f, "extra": f["tokens"]},
    "lossy dtype": lambda f: {**f, "tokens": f["tokens"].astype(np.float32)},
    "dim out of range": lambda f: {**f, "image": np.zeros((2, 3, 64, 8), np.float32)},
    "shared dim disagrees": lambda f: {**f, "tokens": f["tokens"][:1]},
    "not an array": lambda f: {**f, "image": f["image"].tolist()},
}


class Recording(Runner):
    """A runner that records what reached its implementation."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self._use_spec(spec)
        self.calls: list[dict[str, np.ndarray]] = []
        self.closed = 0
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()

    def _run(self, feeds):
        self.started.set()
        self.release.wait(10)
        self.calls.append(dict(feeds))
        return {"logits": expected_logits(feeds["image"], feeds["tokens"])}

    def _close(self) -> None:
        self.closed += 1

    def __repr__(self) -> str:
        return "Recording()"


@pytest.mark.parametrize("bad", sorted(BAD_FEEDS))
def test_the_base_class_refuses_a_bad_feed_before_the_implementation_runs(bad):
    runner = Recording(ModelSpec.from_dict(SPEC))
    with pytest.raises(InputError):
        runner.run(BAD_FEEDS[bad](feeds()))
    assert runner.calls == []
    good = feeds()
    good["tokens"] = good["tokens"].astype(np.int32)  # a lossless cast is made before the implementation
    runner.run(good)
    assert runner.calls[0]["tokens"].dtype == np.int64


@pytest.mark.parametrize("bad", sorted(BAD_FEEDS))
def test_session_refuses_a_bad_feed_before_its_backend_runs(tiny_path, bad):
    with Session(tiny_path) as session:
        calls = []
        session._backend.run = lambda f: calls.append(f)  # type: ignore[method-assign]
        with pytest.raises(InputError):
            session.run(BAD_FEEDS[bad](feeds()))
        assert calls == []


def test_close_waits_for_a_call_in_flight_then_refuses():
    runner = Recording(ModelSpec.from_dict(SPEC))
    runner.release.clear()
    worker = threading.Thread(target=runner.run, args=(feeds(),))
    worker.start()
    assert runner.started.wait(10)
    closer = threading.Thread(target=runner.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and runner.closed == 0  # held back by the call in flight
    runner.release.set()
    worker.join(10)
    closer.join(10)
    assert not closer.is_alive() and runner.closed == 1 and len(runner.calls) == 1
    runner.close()
    assert runner.closed == 1  # idempotent
    with pytest.raises(RuntimeError, match=r"^Recording\(\) is closed$"):
        runner.run(feeds())


def test_capabilities_are_declared_per_backend(tiny_path):
    assert OnnxrtRunner.capabilities == frozenset({Capability.RUN_ON_DEVICE})
    assert TrtRunner.capabilities == frozenset({Capability.RUN_ON_DEVICE, Capability.TIMINGS})
    with Session(tiny_path) as session:
        assert session.capabilities == OnnxrtRunner.capabilities
        assert session.timings() is None  # not declared: no call reaches the backend
    runner = Recording(ModelSpec.from_dict(SPEC))
    assert runner.capabilities == frozenset() and runner.timings() is None
    with pytest.raises(BackendError, match="cannot keep outputs on the device"):
        runner.run_on_device(feeds())
    assert runner.calls == []


def test_the_onnx_model_runner_runs_bytes_with_the_graph_spec():
    with OnnxModelRunner(tiny_graph().SerializeToString()) as runner:
        assert runner.spec_source == "graph" and runner.output_names == ["logits"]
        f = feeds()
        np.testing.assert_allclose(runner.run(f)["logits"], expected_logits(**f), rtol=1e-6)
        with pytest.raises(InputError, match="'tokens'"):
            runner.run({**f, "tokens": f["tokens"].astype(np.float32)})


def test_the_onnx_model_runner_feeds_the_graph_the_inputs_it_has_and_fetches_intermediates(tmp_path):
    import onnx

    model = tiny_graph()
    model.graph.output.append(onnx.helper.make_tensor_value_info("means", onnx.TensorProto.FLOAT, None))
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    spec = ModelSpec.from_dict(
        {
            **SPEC,
            "inputs": [
                *SPEC["inputs"],
                {"name": "unused", "modality": "tensor", "dtype": "float32", "shape": ["batch"]},
            ],
        }
    )
    f = {**feeds(), "unused": np.zeros(2, np.float32)}
    with OnnxModelRunner(path, spec, outputs=["means"], optimize=False) as runner:
        assert runner.spec is spec and runner.spec_source == "given"
        np.testing.assert_allclose(runner.run(f)["means"], f["image"].mean(axis=(2, 3)), rtol=1e-6)


def test_the_onnx_model_runner_names_load_and_run_failures(tmp_path):
    with pytest.raises(ArtifactError, match="onnxruntime cannot load it"):
        OnnxModelRunner(b"not a model")
    runner = OnnxModelRunner(tiny_graph().SerializeToString(), outputs=["nothing"])
    with runner, pytest.raises(BackendError, match="inference failed") as caught:
        runner.run(feeds())
    assert caught.value.__cause__ is not None  # onnxruntime's own error, for who reports it
