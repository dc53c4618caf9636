"""``Session.run`` with every kind of feed: a correct result (the same as onnxruntime called
directly) or an ``InputError`` naming the input, never a crash or a raw backend error."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given

from mmexport.core.errors import BackendError, InputError
from mmexport.runtime import Session
from reliability import budget
from reliability.feed_cases import Case, broken_inputs, cases, reference_feed
from runtime.onnx_models import feeds

HUGE = (8, 3, 10**6, 10**6)  # 48 TB as float16: only a broadcast view of one element can have it


def test_a_huge_feed_that_needs_a_cast_is_refused_before_the_cast_allocates(tiny_graph_onnx: Path) -> None:
    image = np.broadcast_to(np.float16(1), HUGE)
    # batch 8 is in range, height is not: the shape is checked before float16 -> float32
    message = r"input 'image': dim 'height' \(axis 2\) must be in \[4, 16\], got 1000000"
    with pytest.raises(InputError, match=message):
        Session(tiny_graph_onnx).run({"image": image, "tokens": feeds(batch=8)["tokens"]})


def test_a_feed_larger_than_memory_is_refused_without_a_manifest(tiny_graph_no_manifest: Path) -> None:
    """Without a manifest dims are unbounded: the size itself is the limit, checked before onnxruntime
    makes the broadcast view contiguous."""
    session = Session(tiny_graph_no_manifest)
    tokens = feeds(batch=8)["tokens"]
    for image in (np.broadcast_to(np.float32(1), HUGE), np.broadcast_to(np.float16(1), HUGE)):
        with pytest.raises(InputError, match=r"input 'image': .* more than this machine's memory") as info:
            session.run({"image": image, "tokens": tokens})
        assert info.value.input == "image"


def test_onnxruntime_failures_on_unchecked_feeds_are_backend_errors(tiny_graph_no_manifest: Path) -> None:
    """The runner's own guard, for what validation cannot foresee: onnxruntime raises a plain
    RuntimeError when it cannot allocate an input."""
    backend = Session(tiny_graph_no_manifest)._backend
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


def test_a_mapping_is_read_once_and_what_was_checked_runs(tiny_graph_onnx: Path) -> None:
    session = Session(tiny_graph_onnx)
    feed = feeds()
    expected = session.run(feed)["logits"]
    np.testing.assert_array_equal(session.run(_Shifting(feed))["logits"], expected)


def test_masked_arrays_are_refused_since_the_mask_would_be_ignored(tiny_graph_onnx: Path) -> None:
    feed = feeds()
    image = np.ma.masked_greater(feed["image"], 0.5)
    with pytest.raises(InputError, match=r"input 'image': .*masked array") as info:
        Session(tiny_graph_onnx).run({**feed, "image": image})
    assert info.value.input == "image"


# -- property-based: any feed, on the tiny model (with and without manifest) and the default model ---


@dataclass
class Target:
    """A Session under test and onnxruntime opened on the same file, for the reference result."""

    area: str
    session: Session
    reference: Any

    @classmethod
    def open(cls, area: str, path: Path) -> Target:
        import onnxruntime

        reference = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return cls(area, Session(path), reference)


TARGETS = ["tiny", "tiny without manifest"] + (["fusion, the default model"] if budget.FULL else [])


@pytest.fixture(scope="module")
def targets(
    tiny_graph_onnx: Path, tiny_graph_no_manifest: Path, request: pytest.FixtureRequest
) -> dict[str, Target]:
    opened = {"tiny": Target.open("feeds/tiny", tiny_graph_onnx)}
    opened["tiny without manifest"] = Target.open("feeds/tiny without manifest", tiny_graph_no_manifest)
    if budget.FULL:
        path = request.getfixturevalue("default_onnx")
        opened["fusion, the default model"] = Target.open("feeds/fusion, the default model", path)
    return opened


def check_case(target: Target, feed: Any) -> None:
    """The oracle: a valid feed gives onnxruntime's own result; an invalid one an InputError that
    blames an input it breaks; anything else fails the test."""
    spec = target.session.spec
    blamed = broken_inputs(spec, feed)
    try:
        outputs = target.session.run(feed)
    except InputError as e:
        assert blamed is not None, f"a valid feed was refused: {e}"
        assert e.input in blamed, f"{e} blames {e.input!r}, not one of {blamed}"
        assert e.input is None or f"input {e.input!r}" in str(e)
        budget.record(target.area, "InputError")
        return
    except BackendError as e:  # only where onnxruntime refuses the same feed (integer values)
        assert blamed is None, f"{e} for a feed validation should have refused ({blamed})"
        with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own classes
            target.reference.run(None, reference_feed(spec, feed))
        budget.record(target.area, "BackendError (onnxruntime refuses it too)")
        return
    assert blamed is None, f"an invalid feed ran (breaks {blamed})"
    expected = target.reference.run(None, reference_feed(spec, feed))
    names = [o.name for o in target.reference.get_outputs()]
    assert sorted(outputs) == sorted(names)
    for name, value in zip(names, expected, strict=True):
        np.testing.assert_allclose(outputs[name], value, rtol=1e-5, atol=1e-6, equal_nan=True)
    finite = all(np.isfinite(v).all() for v in outputs.values() if v.dtype.kind == "f")
    budget.record(target.area, "ran: same as onnxruntime" + ("" if finite else " (non-finite outputs)"))


@pytest.mark.parametrize("name", TARGETS)
def test_any_feed_gives_the_right_result_or_an_input_error(targets: dict[str, Target], name: str) -> None:
    target = targets[name]

    @budget.FUZZ
    @given(case=cases(target.session.spec))
    def run(case: Case) -> None:
        check_case(target, case.feed)

    run()


def test_nan_and_inf_pass_through_to_the_model(targets: dict[str, Target]) -> None:
    """Values are not read: NaN and inf reach the model, and its output shows them (as onnxruntime's
    does); refusing them would cost a pass over every input on every call."""
    target = targets["tiny"]
    feed = feeds()
    feed["image"][0, 0, 0, 0] = np.nan
    feed["image"][1, 1, 0, 0] = np.inf
    out = target.session.run(feed)["logits"]
    assert np.isnan(out[0, 0]) and np.isposinf(out[1, 1]) and np.isfinite(out[:, 2:]).all()
    check_case(target, feed)
