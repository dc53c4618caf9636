"""``Session.run`` with every kind of feed: a correct result (the same as onnxruntime called
directly) or an ``InputError`` naming the input, never a crash or a raw backend error."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest

from mmexport.errors import BackendError, InputError
from mmexport.runtime import Session
from runtime.onnx_models import feeds

HUGE = (8, 3, 10**6, 10**6)  # 48 TB as float16: only a broadcast view of one element can have it


def test_a_huge_feed_that_needs_a_cast_is_refused_before_the_cast_allocates(tiny_onnx: Path) -> None:
    image = np.broadcast_to(np.float16(1), HUGE)
    # batch 8 is in range, height is not: the shape is checked before float16 -> float32
    message = r"input 'image': dim 'height' \(axis 2\) must be in \[4, 16\], got 1000000"
    with pytest.raises(InputError, match=message):
        Session(tiny_onnx).run({"image": image, "tokens": feeds(batch=8)["tokens"]})


def test_a_feed_larger_than_memory_is_refused_without_a_manifest(tiny_onnx_bare: Path) -> None:
    """Without a manifest dims are unbounded: the size itself is the limit, checked before onnxruntime
    makes the broadcast view contiguous."""
    session = Session(tiny_onnx_bare)
    tokens = feeds(batch=8)["tokens"]
    for image in (np.broadcast_to(np.float32(1), HUGE), np.broadcast_to(np.float16(1), HUGE)):
        with pytest.raises(InputError, match=r"input 'image': .* more than this machine's memory") as info:
            session.run({"image": image, "tokens": tokens})
        assert info.value.input == "image"


def test_onnxruntime_failures_on_unchecked_feeds_are_backend_errors(tiny_onnx_bare: Path) -> None:
    """The runner's own guard, for what validation cannot foresee: onnxruntime raises a plain
    RuntimeError when it cannot allocate an input."""
    backend = Session(tiny_onnx_bare)._backend
    huge = {"image": np.broadcast_to(np.float32(1), HUGE), "tokens": feeds(batch=8)["tokens"]}
    with pytest.raises(BackendError, match="onnxruntime: inference failed"):
        backend.run(huge)


class _Shifting(Mapping[str, np.ndarray]):
    """A mapping that gives other arrays once read: what is checked must be what runs."""

    def __init__(self, first: dict[str, np.ndarray]) -> None:
        self.first, self.reads = first, 0

    def __getitem__(self, key: str) -> np.ndarray:
        self.reads += 1
        if self.reads <= len(self.first):
            return self.first[key]
        return np.zeros((50, 50), np.float64)

    def __iter__(self) -> Iterator[str]:
        return iter(self.first)

    def __len__(self) -> int:
        return len(self.first)


def test_a_mapping_is_read_once_and_what_was_checked_runs(tiny_onnx: Path) -> None:
    session = Session(tiny_onnx)
    feed = feeds()
    expected = session.run(feed)["logits"]
    np.testing.assert_array_equal(session.run(_Shifting(feed))["logits"], expected)


def test_masked_arrays_are_refused_since_the_mask_would_be_ignored(tiny_onnx: Path) -> None:
    feed = feeds()
    image = np.ma.masked_greater(feed["image"], 0.5)
    with pytest.raises(InputError, match=r"input 'image': .*masked array") as info:
        Session(tiny_onnx).run({**feed, "image": image})
    assert info.value.input == "image"
