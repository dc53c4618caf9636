"""One Session from many threads, and many calls in a row: outputs equal to a serial run, errors
stay in the thread that made them, and memory does not grow.

tests/runtime/test_threads.py checks valid feeds from 8 threads; here the calls also mix invalid
feeds and lossless casts, start together (a barrier), and run long (the soak)."""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from mmexport.core.errors import InputError
from mmexport.core.spec import ModelSpec
from mmexport.runtime import Session
from reliability import budget
from runtime.onnx_models import feeds

THREADS = 8
RSS_BOUND_MIB = 16  # growth allowed over the soak, after a warm-up on the same feeds


def mixed_feeds(count: int) -> list[dict[str, np.ndarray]]:
    """Valid feeds of many shapes, some needing a cast (int32 tokens), every fifth one invalid."""
    out = []
    for i in range(count):
        feed = feeds(batch=1 + i % 8, height=4 + i % 13, width=4 + (i * 7) % 13, seq=1 + i % 12, seed=i)
        if i % 3 == 1:
            feed["tokens"] = feed["tokens"].astype(np.int32)
        if i % 5 == 4:
            feed["image"] = feed["image"][:, :2]  # axis 1 must be 3
        out.append(feed)
    return out


def spec_feeds(spec: ModelSpec, count: int) -> list[dict[str, np.ndarray]]:
    """Valid feeds at small points of any spec (dims from their min up), every fifth one invalid
    (a batch dim 0)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        point = {d.name: int(rng.integers(d.min, min(d.max, d.min + 16) + 1)) for d in spec.dims.values()}
        feed = spec.sample_feed(point, seed=i)
        if i % 5 == 4:
            first = spec.inputs[0].name
            feed[first] = feed[first][:0]
        out.append(feed)
    return out


def call(session: Session, feed: dict[str, np.ndarray]) -> np.ndarray | str:
    try:
        return session.run(feed)[session.outputs[0].name]
    except InputError as e:
        return str(e)


def test_threads_match_serial_with_errors_and_casts_mixed_in(tiny_graph_onnx: Path) -> None:
    session = Session(tiny_graph_onnx)
    inputs = mixed_feeds(400 if budget.FULL else 120)
    serial = [call(session, f) for f in inputs]
    start = threading.Barrier(THREADS)

    def worker(index: int) -> list[np.ndarray | str]:
        start.wait()
        return [call(session, inputs[i]) for i in range(index, len(inputs), THREADS)]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        parts = list(pool.map(worker, range(THREADS)))
    parallel: list[np.ndarray | str | None] = [None] * len(inputs)
    for index, part in enumerate(parts):
        parallel[index::THREADS] = part
    for i, (a, b) in enumerate(zip(serial, parallel, strict=True)):
        if isinstance(a, str):
            assert a == b and "input 'image': axis 1 must be 3" in a, i
        else:
            assert isinstance(b, np.ndarray), (i, b)
            np.testing.assert_array_equal(a, b)
    errors = sum(isinstance(a, str) for a in serial)
    budget.record(
        "threads/tiny", f"{THREADS} threads: outputs equal to the serial run's", len(inputs) - errors
    )
    budget.record("threads/tiny", f"{THREADS} threads: InputErrors equal to the serial run's", errors)


def rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc; the peak elsewhere)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


SOAKED = ["tiny"] + (["fusion, the default model"] if budget.FULL else [])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="current RSS is read from /proc")
@pytest.mark.parametrize("name", SOAKED)
def test_soak_memory_does_not_grow(name: str, tiny_graph_onnx: Path, request: pytest.FixtureRequest) -> None:
    if name == "tiny":
        session = Session(tiny_graph_onnx)
        inputs = mixed_feeds(50)
    else:
        session = Session(request.getfixturevalue("default_onnx"))
        inputs = spec_feeds(session.spec, 50)
    for feed in inputs * 4:  # warm-up: onnxruntime's arena grows to the largest shape once
        call(session, feed)
    gc.collect()
    before = rss_bytes()
    for i in range(budget.SOAK_CALLS):
        call(session, inputs[i % len(inputs)])
    gc.collect()
    growth = rss_bytes() - before
    figures = {
        "calls": budget.SOAK_CALLS,
        "rss_before_mib": round(before / 2**20, 1),
        "growth_kib": round(growth / 2**10),
        "bound_mib": RSS_BOUND_MIB,
    }
    budget.figure(f"soak/{name}", figures)
    budget.record(f"soak/{name}", "calls (1 in 5 an InputError)", budget.SOAK_CALLS)
    assert growth < RSS_BOUND_MIB * 2**20, (
        f"RSS grew by {growth / 2**20:.1f} MiB over {budget.SOAK_CALLS} calls"
    )
