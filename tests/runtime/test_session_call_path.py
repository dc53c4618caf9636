"""What every CPU call goes through: the compiled binding's run, validation once, nothing held after close."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnxruntime as ort

from mmexport.runtime import Session
from mmexport.runtime.backends.onnxrt.runner import direct_run
from runtime.onnx_models import expected_logits, feeds


def test_cpu_calls_skip_the_python_wrapper_and_agree_with_it(tiny_path):
    with Session(tiny_path) as s:
        backend = s._backend
        assert backend._session_run == backend._session._sess.run
        f = feeds(seed=3)
        np.testing.assert_array_equal(s.run(f)["logits"], backend._session.run(None, f)[0])
        np.testing.assert_allclose(s.run(f)["logits"], expected_logits(**f), rtol=1e-5, atol=1e-6)
    assert backend._session is None and backend._session_run is None  # closing releases the session


def test_a_session_without_a_compiled_binding_uses_its_public_run():
    public = SimpleNamespace(run=lambda names, feeds, options=None: ["public"])
    assert direct_run(public) is public.run
    compiled = SimpleNamespace(run=lambda names, feeds, options=None: ["compiled"])
    assert direct_run(SimpleNamespace(run=public.run, _sess=compiled)) is compiled.run
    assert direct_run(SimpleNamespace(run=public.run, _sess=object())) is public.run


def test_the_compiled_run_takes_the_arguments_the_wrapper_passes(tiny_path):
    session = ort.InferenceSession(str(tiny_path), providers=["CPUExecutionProvider"])
    f = feeds()
    np.testing.assert_array_equal(direct_run(session)(["logits"], f, None)[0], session.run(None, f)[0])
