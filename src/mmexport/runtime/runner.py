"""``Runner``: the one contract every stage runs a model through (Polygraphy's ``BaseRunner``).

``run(feeds)`` validates the feeds once against the runner's spec, then calls the implementation
(``_run``); ``close`` and the calls in flight are handled here, once. What a runner can do beyond
``run`` is declared in ``capabilities`` (``Capability.RUN_ON_DEVICE``, ``Capability.TIMINGS``),
never probed. ``Session``, ``SplitSession``, the torch reference runner, the split part runner and
the ONNX model runner of the parity, accuracy and calibration stages all implement it.
"""

from __future__ import annotations

import abc
import enum
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

from mmexport.core.errors import BackendError, InputError
from mmexport.core.spec import ModelSpec
from mmexport.runtime.validation import FeedValidator

T = TypeVar("T")


class Capability(enum.Enum):
    """What a runner offers beyond ``run``."""

    RUN_ON_DEVICE = "run_on_device"  # feeds and outputs left on the GPU
    TIMINGS = "timings"  # GPU milliseconds of the last call, by phase


class Runner(abc.ABC):
    """Runs feeds (``dict[str, numpy.ndarray]``) and returns every output by name.

    Subclasses set ``spec`` (through ``_use_spec``) and implement ``_run`` on validated feeds;
    those declaring ``Capability.RUN_ON_DEVICE`` or ``TIMINGS`` implement ``_run_on_device``
    (with ``_feed_meta``) or ``_timings``. ``run`` may be called from several threads at once;
    ``close`` waits for the calls in flight, then releases (``_close``); later calls raise
    ``RuntimeError``.
    """

    capabilities: frozenset[Capability] = frozenset()
    backend_name: str = "?"
    spec_source: str = "manifest"  # "graph" when the spec was read from the artifact's own inputs
    spec: ModelSpec

    def __init__(self) -> None:
        self._closed = False
        self._lock = threading.Lock()  # guards _closed and _running, the calls in flight
        self._idle = threading.Condition(self._lock)
        self._running = 0
        self._feed_validator: FeedValidator | None = None
        # until a spec is set: raises "has no spec yet"
        self._check: Callable[[Mapping[str, Any]], Mapping[str, np.ndarray]] = self.validate

    def _use_spec(self, spec: ModelSpec, source: str = "manifest") -> None:
        """The spec feeds are checked against (set once the implementation knows it)."""
        self.spec = spec
        self.spec_source = source
        self._feed_validator = FeedValidator(spec)
        # run's check: the validator itself (two calls fewer per run) unless validate is overridden
        overridden = type(self).validate is not Runner.validate
        self._check = self.validate if overridden else self._feed_validator

    def _validator(self) -> FeedValidator:
        if self._feed_validator is None:
            raise RuntimeError(f"{type(self).__name__} has no spec yet")
        return self._feed_validator

    # -- the contract -----------------------------------------------------------------------

    @property
    def input_names(self) -> list[str]:
        return self.spec.input_names

    @property
    def output_names(self) -> list[str]:
        return self.spec.output_names

    def validate(self, feeds: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
        """What ``run`` checks, without running: the feeds as the implementation would get them."""
        return self._validator()(feeds)

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Validate ``feeds`` (raising ``InputError``), run, return every output by name."""
        # ``_call`` written out: this is every call's path, and each Python frame on it shows in
        # the latency of a small model (benchmarks/session_overhead.py)
        lock = self._lock
        with lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            self._running += 1
        try:
            return self._run(self._check(feeds))
        finally:
            with lock:
                self._running -= 1
                if self._closed:
                    self._idle.notify_all()

    def run_on_device(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """On CUDA: feeds as device tensors or host arrays, outputs left on the device."""
        if Capability.RUN_ON_DEVICE not in self.capabilities:
            raise BackendError(self.backend_name, "cannot keep outputs on the device")
        if type(feeds) is not dict and not isinstance(feeds, Mapping):
            raise InputError(None, f"feeds must be a dict of input name -> array, got {type(feeds).__name__}")
        lock = self._lock  # as in run: the bookkeeping inline, it is every call's path
        with lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            self._running += 1
        try:
            shapes, dtypes = {}, {}
            meta = self._feed_meta
            for name, value in feeds.items():  # InputError for a value the implementation does not take
                shapes[name], dtypes[name] = meta(name, value)
            self._validator().check_meta(shapes, dtypes)
            return self._run_on_device(feeds)
        finally:
            with lock:
                self._running -= 1
                if self._closed:
                    self._idle.notify_all()

    def timings(self) -> dict[str, float] | None:
        """GPU milliseconds of the last call by phase (``Capability.TIMINGS``); None elsewhere."""
        if Capability.TIMINGS not in self.capabilities:
            return None
        with self._in_flight():
            return self._timings()

    def describe(self) -> dict[str, Any]:
        """What runs the model (backend, device, library), for reports."""
        return {"backend": self.backend_name}

    def close(self) -> None:
        """Wait for the calls in flight, then release what the runner holds. Idempotent."""
        with self._idle:
            if self._closed:
                return
            self._closed = True
            self._idle.wait_for(lambda: self._running == 0)
        self._close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what implementations provide ---------------------------------------------------------

    @abc.abstractmethod
    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run feeds already validated against ``spec``."""

    def _run_on_device(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError  # only called with Capability.RUN_ON_DEVICE declared

    def _feed_meta(self, name: str, value: Any) -> tuple[tuple[int, ...], np.dtype]:
        raise NotImplementedError  # only called with Capability.RUN_ON_DEVICE declared

    def _timings(self) -> dict[str, float] | None:
        raise NotImplementedError  # only called with Capability.TIMINGS declared

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release what the implementation holds (sessions, device memory)."""

    # -- the calls in flight ----------------------------------------------------------------

    def _call(self, feeds: Mapping[str, Any], impl: Callable[[Mapping[str, np.ndarray]], T]) -> T:
        """Validate ``feeds``, then ``impl(validated)``, as one call in flight (refused once closed)."""
        # every call's path: the lock taken inline (no context manager, no helper call)
        lock = self._lock
        with lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            self._running += 1
        try:
            return impl(self.validate(feeds))  # subclasses may validate otherwise (split: subsets)
        finally:
            with lock:
                self._running -= 1
                if self._closed:
                    self._idle.notify_all()

    @contextmanager
    def _in_flight(self) -> Iterator[None]:
        """One call that uses what ``close`` releases: refused once closed, waited for by ``close``."""
        self._enter()
        try:
            yield
        finally:
            self._leave()

    def _enter(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            self._running += 1

    def _leave(self) -> None:
        with self._lock:
            self._running -= 1
            if self._closed:
                self._idle.notify_all()
