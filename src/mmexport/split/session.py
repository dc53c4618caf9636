"""``SplitSession``: run a split export (per-modality parts + fusion) as one model.

    pipe = SplitSession("fusion/")                                 # reads fusion/composition.json
    pipe.run({"image": img, "tokens": toks, "audio": wav})     # the monolithic model's outputs
    pipe.run({"image": img, "tokens": toks})                   # audio absent: as the model declares

Each part is a ``Session``; independent parts (the encoders) run concurrently on a thread pool
(onnxruntime releases the GIL while it runs), then the parts that need them (the fusion part).
Absent modalities follow the composition's declarations; with ``cache=True`` an encoder whose
inputs did not change since the previous call is not run again.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.errors import InputError
from mmexport.core.spec import ModelSpec
from mmexport.runtime.runner import Runner
from mmexport.runtime.session import Session
from mmexport.runtime.validation import FeedValidator
from mmexport.split.checks import cached_parts, check_cache_keys, check_parts, check_presence
from mmexport.split.composition import Composition, Part, Wire, read_composition

Values = dict[tuple[str, str], np.ndarray]  # (part, output) -> array


class SplitSession(Runner):
    """A split export loaded as one runnable model: a ``Runner`` (``run(feeds) -> dict``), like ``Session``.

    ``folder``: the split export (or its ``composition.json``); every part file is checked
    against its sha256 at load. ``device``, ``backend``, ``provider``, ``threads``, ``spin``,
    ``options``: as for ``Session``, applied to every part (``threads`` per part: parts that run
    concurrently each use that many). ``parallel``: run independent parts on a thread pool
    (False: one after the other on the calling thread; None, the default: the pool on the CPU,
    in turn on CUDA, where a part is a short sequence of kernel launches on one GPU and the hop
    to a pool thread and back costs more than the overlap of their host work gives).
    ``cache``: remember the last inputs and outputs of every encoder (True) or of the named ones
    (``"text"`` or ``{"text", "audio"}``; see ``run``).

    Thread safety: ``run`` may be called from several threads; the cache is shared and locked.
    """

    def __init__(
        self,
        folder: str | Path,
        device: str = "cpu",
        *,
        backend: str = "auto",
        provider: str | None = None,
        threads: int | None = None,
        spin: bool | None = None,
        options: Mapping[str, Any] | None = None,
        cache: bool | str | Iterable[str] = False,
        parallel: bool | None = None,
    ) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.composition: Composition = read_composition(self.folder)
        cached = cached_parts(self.composition, cache)
        root = self.folder if self.folder.is_dir() else self.folder.parent
        self._use_spec(self.composition.spec)
        self._sessions: dict[str, Session] = {}
        self._cache_lock = threading.Lock()  # the cache and its counts
        try:
            for part in self.composition.parts:
                self._sessions[part.name] = Session(
                    root / part.file,
                    backend,
                    device,
                    provider=provider,
                    threads=threads,
                    spin=spin,
                    options=options,
                )
            check_parts(self.composition, self._sessions, str(root / "composition.json"))
            self.backend_name = next(iter(self._sessions.values())).backend_name
        except BaseException:
            self.close()
            raise
        self._levels = self.composition.levels()
        width = max(len(level) for level in self._levels)
        # Independent parts run on host threads. For the TensorRT backend, this is where each part
        # would get its own CUDA stream (and an event the fusion part waits on); Session does not
        # expose streams yet, so on a GPU the parts overlap only their host-side work.
        if parallel is None:
            parallel = not device.startswith("cuda")
        self._pool = ThreadPoolExecutor(width - 1, "mmexport-part") if parallel and width > 1 else None
        self._cache: dict[str, tuple[Any, dict[str, np.ndarray]]] = {}
        self._stats = {p: {"hits": 0, "misses": 0} for p in cached}
        self._cache_enabled = bool(self._stats)
        self._validators: dict[frozenset[str], FeedValidator] = {}
        self._encoders = [p for p in self.composition.parts if p.model_inputs]

    # -- like Session ---------------------------------------------------------------------

    @property
    def parts(self) -> dict[str, Session]:
        """Part name -> its Session."""
        return dict(self._sessions)

    def validate(self, feeds: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """What ``run`` checks, without running: the given inputs (cast where allowed). An absent
        modality must be declared (``InputError`` naming it and what is declared)."""
        if not isinstance(feeds, Mapping):
            raise InputError(
                None, f"feeds must be a dict of input name -> numpy array, got {type(feeds).__name__}"
            )
        unknown = sorted(str(k) for k in feeds if k not in self.spec.input_names)
        if unknown:
            raise InputError(
                unknown[0], f"is not an input of this model (it takes {', '.join(self.spec.input_names)})"
            )
        if not feeds:
            raise InputError(None, f"no inputs given (the model takes {', '.join(self.spec.input_names)})")
        check_presence(self.spec, self._encoders, feeds)
        return self._subset_validator(frozenset(feeds))(feeds)

    def run(
        self, feeds: Mapping[str, np.ndarray], *, cache_keys: Mapping[str, Any] | None = None
    ) -> dict[str, np.ndarray]:
        """The model's outputs for ``feeds`` (inputs of absent modalities may be left out).

        With ``cache=True``: an encoder whose inputs are unchanged since the last call is not run
        again. ``cache_keys`` (part -> any hashable, e.g. ``{"text": "cmd-42"}``) names the inputs
        of a part (their shapes and dtypes are compared too); parts without a key are compared by
        a blake2b hash of their inputs' bytes, shape and dtype (a pass over the data: about 1 ms
        per MB; cheap for tokens, not free for images: give a key where the caller knows).
        """
        return self._call(feeds, lambda valid: self._outputs(valid, cache_keys))

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._outputs(feeds, None)

    def _outputs(
        self, feeds: Mapping[str, np.ndarray], cache_keys: Mapping[str, Any] | None
    ) -> dict[str, np.ndarray]:
        values = self._run_levels(feeds, check_cache_keys(cache_keys, self._stats), None)
        return {
            name: _owned(values[(w.name, w.output or "")]) for name, w in self.composition.outputs.items()
        }

    def part_inputs(self, feeds: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """What every part was fed for ``feeds`` (part -> input -> array), e.g. to calibrate a
        downstream part on what the upstream parts make of real data; absent parts are left out."""
        record: dict[str, dict[str, np.ndarray]] = {}
        self._call(feeds, lambda valid: self._run_levels(valid, {}, record))
        return {part: {k: _owned(v) for k, v in inputs.items()} for part, inputs in record.items()}

    def part_outputs(self, feeds: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """Every part's outputs for ``feeds`` (part -> output -> array); absent parts are left out."""
        values = self._call(feeds, lambda valid: self._run_levels(valid, {}, None))
        out: dict[str, dict[str, np.ndarray]] = {}
        for (part, name), value in values.items():
            out.setdefault(part, {})[name] = _owned(value)
        return out

    def cache_info(self) -> dict[str, dict[str, int]]:
        """Hits and misses per cached part since load or ``clear_cache``."""
        with self._cache_lock:
            return {k: dict(v) for k, v in self._stats.items()}

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()
            for v in self._stats.values():
                v.update(hits=0, misses=0)

    def describe(self) -> dict[str, Any]:
        """The first part's backend description, plus every part's file and precision."""
        first = next(iter(self._sessions.values())).describe()
        return {
            **first,
            "artifact": str(self.folder),
            "precision": "+".join(sorted(set(self.composition.precisions.values()))),
            "parts": {p.name: {"file": p.file, "precision": p.precision} for p in self.composition.parts},
            "parallel": self._pool is not None,
            "cache": self._cache_enabled,
        }

    def _close(self) -> None:
        """Stop the thread pool and close every part (``close`` waited for the runs in flight)."""
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=True)
        for session in self._sessions.values():
            session.close()

    def __repr__(self) -> str:
        return f"SplitSession({str(self.folder)!r}, parts={list(self._sessions)})"

    # -- running --------------------------------------------------------------------------

    def _run_levels(
        self,
        feeds: Mapping[str, np.ndarray],
        keys: Mapping[str, Any],
        record: dict[str, dict[str, np.ndarray]] | None,
    ) -> Values:
        absent = {p.name for p in self._encoders if not all(n in feeds for n in p.model_inputs)}
        sizes = dim_sizes(self.spec, feeds)
        values: Values = {}
        for level in self._levels:
            todo = [self.composition.part(n) for n in level if n not in absent]
            jobs = [(p, self._part_feeds(p, feeds, values, absent, sizes)) for p in todo]
            if record is not None:
                record.update({p.name: f for p, f in jobs})
            for (part, _), outputs in zip(jobs, self._run_level(jobs, keys), strict=True):
                values.update({(part.name, k): v for k, v in outputs.items()})
        return values

    def _run_level(
        self, jobs: list[tuple[Part, dict[str, np.ndarray]]], keys: Mapping[str, Any]
    ) -> list[dict[str, np.ndarray]]:
        """Parts that need none of each other: the first on this thread, the others on the pool.
        A failure is raised once every part of the level has finished (none is left running)."""
        if self._pool is None or len(jobs) < 2:
            return [self._run_part(p, f, keys.get(p.name)) for p, f in jobs]
        futures = [self._pool.submit(self._run_part, p, f, keys.get(p.name)) for p, f in jobs[1:]]
        try:
            first = self._run_part(*jobs[0], keys.get(jobs[0][0].name))
            return [first, *(f.result() for f in futures)]
        except BaseException:
            wait(futures)  # concurrent.futures.wait costs ~30 us a call: only on failure
            raise

    def _run_part(self, part: Part, feeds: dict[str, np.ndarray], key: Any) -> dict[str, np.ndarray]:
        if not self._cache_enabled or part.name not in self._stats:
            return self._sessions[part.name].run(feeds)
        token = _cache_token(feeds, key)
        with self._cache_lock:
            entry = self._cache.get(part.name)
            hit = entry is not None and entry[0] == token
            self._stats[part.name]["hits" if hit else "misses"] += 1
        if hit and entry is not None:
            return entry[1]
        outputs = self._sessions[part.name].run(feeds)
        for value in outputs.values():
            value.setflags(write=False)  # shared by later calls: callers get copies (_owned)
        with self._cache_lock:
            self._cache[part.name] = (token, outputs)
        return outputs

    def _part_feeds(
        self,
        part: Part,
        feeds: Mapping[str, np.ndarray],
        values: Values,
        absent: set[str],
        sizes: dict[str, int],
    ) -> dict[str, np.ndarray]:
        session = self._sessions[part.name]
        out = {}
        for name, wire in part.inputs.items():
            if wire.kind == "input":
                out[name] = feeds[wire.name]
            elif wire.kind == "present":
                out[name] = np.full(
                    stand_in_shape(session.spec, name, sizes), wire.name not in absent, dtype=bool
                )
            elif wire.name not in absent:
                out[name] = values[(wire.name, wire.output or "")]
            else:
                out[name] = self._stand_in(wire, session.spec, name, sizes)
        return out

    def _stand_in(self, wire: Wire, spec: ModelSpec, name: str, sizes: dict[str, int]) -> np.ndarray:
        """What an absent part's output is replaced by: zeros (mask) or its null embedding."""
        source = self.composition.part(wire.name).absent
        dtype = np.dtype(spec.input(name).dtype)
        if source is not None and source.kind == "constant":
            value = source.values[wire.output or ""]
            batch = stand_in_shape(spec, name, sizes)[0]
            return np.ascontiguousarray(np.broadcast_to(value.astype(dtype), (batch, *value.shape)))
        return np.zeros(stand_in_shape(spec, name, sizes), dtype=dtype)

    # -- helpers --------------------------------------------------------------------------

    def _subset_validator(self, names: frozenset[str]) -> FeedValidator:
        """Feed checks for the inputs given (shared dims must agree across modalities)."""
        validator = self._validators.get(names)
        if validator is None:
            inputs = [i for i in self.spec.inputs if i.name in names]
            used = {d for i in inputs for d in i.dim_names}
            sub = ModelSpec(
                tuple(inputs), self.spec.outputs, {n: d for n, d in self.spec.dims.items() if n in used}
            )
            validator = self._validators[names] = FeedValidator(sub)
        return validator


def _cache_token(feeds: Mapping[str, np.ndarray], key: Any) -> tuple[Any, ...]:
    """What a cached entry must equal: the caller's key (trusted for the content, not for the
    shapes and dtypes, which are compared too), else the content hash."""
    if key is None:
        return ("hash", content_hash(feeds))
    return ("key", key, tuple((n, feeds[n].dtype.str, feeds[n].shape) for n in sorted(feeds)))


def _owned(value: np.ndarray) -> np.ndarray:
    """An array the caller may change: cached (read-only) ones are copied."""
    return value if value.flags.writeable else value.copy()


def content_hash(feeds: Mapping[str, np.ndarray]) -> bytes:
    """blake2b of each array's name, dtype, shape and bytes: equal arrays, equal hash."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(feeds):
        value = np.ascontiguousarray(feeds[name])
        digest.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        digest.update(value.data.cast("B"))
    return digest.digest()


def dim_sizes(spec: ModelSpec, feeds: Mapping[str, np.ndarray]) -> dict[str, int]:
    sizes = {}
    for name, value in feeds.items():
        for axis, dim in enumerate(spec.input(name).shape):
            if isinstance(dim, str):
                sizes[dim] = value.shape[axis]
    return sizes


def stand_in_shape(spec: ModelSpec, name: str, sizes: Mapping[str, int]) -> tuple[int, ...]:
    """An input's shape with model dims from the feeds and other (derived) dims at their min."""
    return tuple(d if isinstance(d, int) else sizes.get(d, spec.dims[d].min) for d in spec.input(name).shape)


__all__ = ["SplitSession", "content_hash", "dim_sizes", "stand_in_shape"]
