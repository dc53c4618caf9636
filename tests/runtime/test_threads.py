"""One Session used from several threads gives the same outputs as serial calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from runtime.onnx_models import feeds


def test_threads_match_serial(session):
    inputs = [feeds(batch=1 + i % 8, height=4 + i % 12, seq=1 + i % 12, seed=i) for i in range(64)]
    serial = [session.run(f)["logits"] for f in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda f: session.run(f)["logits"], inputs))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)
