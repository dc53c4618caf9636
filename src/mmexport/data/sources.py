"""Calibration and evaluation data behind one contract: ``open_source(data, spec) -> FeedSource``.

``data`` is a folder of sample folders or with an ``index.jsonl``, a ``.npz`` file or a folder
of them, ``"synthetic"`` (built-in models only), a Python iterable of feeds or of
``(feed, labels)``, a function ``make_feeds(spec)`` returning one, or a reference to such a
function (``path/file.py:make_feeds`` or ``pkg.mod:make_feeds``). Every source yields batches
checked against the spec (``feeds.validate_batch``), restarts on every ``batches()`` call and
holds one batch in memory at a time. numpy only: the torch-free runtime uses this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.errors import DataError
from mmexport.core.references import ReferenceNotFound, exited, get_attribute, import_source
from mmexport.core.spec import ModelSpec
from mmexport.data.feeds import (
    Batch,
    Feed,
    FeedSource,
    ShapeCoverage,
    batch_limit,
    hash_batch,
    new_digest,
    require_batches,
    shape_coverage,
    take,
    validate_batch,
)
from mmexport.data.folders import INDEX_FILE, FolderSource, NpzSource, list_sample_folders, read_index
from mmexport.data.preprocess import dim_range
from mmexport.data.synthetic import HELDOUT_SEED, PAD_ID, SyntheticTask
from mmexport.data.task_spec import TASK_SPECS

SYNTHETIC = "synthetic"
SPLITS = ("calibration", "evaluation")

CALIBRATION_SEED = 2_000_029
"""Seed of the synthetic calibration split: neither the training seed (0) nor HELDOUT_SEED, so
calibration sees data the model was not trained on and evaluation data it was not calibrated on."""

CALIBRATION_SAMPLES = 512
"""Synthetic samples of the calibration split when ``samples`` is not given."""

EVALUATION_SAMPLES = 1000
"""Synthetic samples of the evaluation split when ``samples`` is not given."""

TRAINED_IMAGE_SIZES = (48, 128)
"""Image heights and widths the built-in models were trained on; synthetic batches stay inside."""

LONGEST_QUESTION = 13
"""Words in the synthetic task's longest question (2-word prefix, 8-word template, 3-word suffix)."""


def open_source(
    data: Any,
    spec: ModelSpec,
    *,
    builtin: str | None = None,
    split: str = "calibration",
    samples: int | None = None,
    batch_size: int = 8,
) -> FeedSource:
    """The FeedSource for ``data`` (see the module docstring); ``samples`` caps the sample count.

    ``builtin`` names the built-in model for ``"synthetic"``; ``split`` picks its calibration
    or evaluation stream. ``batch_size`` groups folder samples and sizes synthetic batches.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if samples is not None and samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if isinstance(data, str) and data == SYNTHETIC:
        return SyntheticSource(spec, builtin, split=split, samples=samples, batch_size=batch_size)
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.exists():
            return _open_path(path, spec, samples, batch_size)
        if isinstance(data, str) and ":" in data:
            return IterableSource(_reference_factory(data, spec), spec, f"make_feeds {data!r}", samples)
        raise DataError(
            f"{str(data)!r} does not exist",
            hint="give a folder, a .npz file, 'synthetic', or file.py:make_feeds",
        )
    if callable(data):
        name = getattr(data, "__name__", type(data).__name__)
        return IterableSource(lambda: data(spec), spec, f"{name}(spec)", samples)
    if isinstance(data, Mapping):
        return IterableSource(lambda: [data], spec, "one feed", samples)
    if isinstance(data, Iterable):
        if iter(data) is data:
            raise DataError(
                f"a one-shot iterator ({type(data).__name__}) cannot be read more than once",
                hint="pass a list, or a function make_feeds(spec) that returns a new iterable",
            )
        return IterableSource(lambda: data, spec, f"{type(data).__name__} of feeds", samples)
    raise DataError(f"cannot read data from a {type(data).__name__}")


def _open_path(path: Path, spec: ModelSpec, samples: int | None, batch_size: int) -> FeedSource:
    if path.is_file():
        if path.suffix != ".npz":
            raise DataError(f"{str(path)!r} is a file but not .npz", hint="give a folder or a .npz file")
        return NpzSource([path], spec, samples, f"npz {str(path)!r}")
    if (path / INDEX_FILE).is_file():
        return FolderSource(path, spec, read_index(path, spec, samples), batch_size)
    npz = sorted(p for p in path.iterdir() if p.suffix == ".npz" and p.is_file())
    if npz:
        return NpzSource(npz, spec, samples, f"npz folder {str(path)!r} ({len(npz)} files)")
    return FolderSource(path, spec, list_sample_folders(path, spec, samples), batch_size)


EXIT_HINT = "a data function returns (or yields) its feeds; to report a problem, raise an exception"


class IterableSource:
    """Feeds (or ``(feed, labels)`` pairs) from Python: a fresh iterable from ``factory`` each pass."""

    def __init__(
        self, factory: Callable[[], Iterable[Any]], spec: ModelSpec, description: str, samples: int | None
    ) -> None:
        self._factory = factory
        self.spec = spec
        self.description = description
        self.samples = samples

    def batches(self) -> Iterator[Batch]:
        return require_batches(take(self._batches(), self.samples), self.description)

    def _batches(self) -> Iterator[Batch]:
        try:  # the user's function runs when called and, for a generator, while it is iterated
            items = self._factory()
            if not isinstance(items, Iterable):
                raise DataError(
                    f"{self.description} returned a {type(items).__name__}, not an iterable of feeds"
                )
            for index, item in enumerate(items):
                feed, labels = _split_item(item, self.description, index)
                yield validate_batch(feed, self.spec, batch=f"{self.description}[{index}]", labels=labels)
        except SystemExit as e:  # never the user's exit status: 0 would pass for success
            error = exited(self.description, e, hint=EXIT_HINT)
            raise DataError(error.message, hint=error.hint) from e

    def fingerprint(self) -> str:
        """The hash of every array and label given: one full pass over the data."""
        digest = new_digest("arrays")
        for batch in self.batches():
            hash_batch(digest, batch)
        return digest.hexdigest()


def _split_item(item: Any, description: str, index: int) -> tuple[Any, Any]:
    if isinstance(item, Mapping):
        return item, None
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Mapping):
        return item
    raise DataError(
        f"expected a feed dict or a (feed, labels) tuple, got {type(item).__name__}",
        sample=f"{description}[{index}]",
    )


# -- make_feeds references ------------------------------------------------------------------


def _reference_factory(reference: str, spec: ModelSpec) -> Callable[[], Iterable[Any]]:
    source, _, attr = reference.rpartition(":")
    try:
        function = get_attribute(import_source(source, prefix="_mmexport_feeds_"), attr)
    except ReferenceNotFound as e:
        raise DataError(f"make_feeds {reference!r}: {e.message}", hint=e.hint) from e
    if not callable(function):
        raise DataError(f"make_feeds {reference!r}: {attr!r} is not a function")

    def factory() -> Iterable[Any]:
        try:
            return function(spec)  # type: ignore[no-any-return]
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"make_feeds {reference!r} raised {type(e).__name__}: {e}") from e

    return factory


# -- synthetic -------------------------------------------------------------------------------


class SyntheticSource:
    """The built-in models' synthetic task, with sizes spread over the spec's dynamic ranges.

    Batch 0 uses the smallest sizes, batch 1 the largest, later batches random ones: images
    within the sizes the models were trained on (48-128 px, clipped to the spec), audio frames
    between the dim's min and twice its opt. Questions are padded to the longest in each batch.
    """

    def __init__(
        self, spec: ModelSpec, builtin: str | None, *, split: str, samples: int | None, batch_size: int
    ) -> None:
        if builtin not in TASK_SPECS:
            which = "" if builtin is None else f", not for {builtin!r}"
            raise DataError(
                f"synthetic data exists only for the built-in models ({', '.join(TASK_SPECS)}){which}",
                hint="for other models give a folder, .npz files or make_feeds",
            )
        expected = [entry["name"] for entry in TASK_SPECS[builtin]["inputs"]]
        if sorted(spec.input_names) != sorted(expected):
            raise DataError(
                f"synthetic data for {builtin!r} gives inputs {', '.join(expected)}, "
                f"the spec has {', '.join(spec.input_names)}"
            )
        self.spec = spec
        self.builtin = builtin
        self.split = split
        self.seed = CALIBRATION_SEED if split == "calibration" else HELDOUT_SEED
        default = CALIBRATION_SAMPLES if split == "calibration" else EVALUATION_SAMPLES
        self.samples = default if samples is None else samples
        self.batch_size = batch_limit(spec, batch_size)
        self._with_audio = "audio" in expected
        self.ranges = self._ranges()
        self.description = f"synthetic ({builtin}, {split} split, {self.samples} samples)"

    def _ranges(self) -> dict[str, tuple[int, int]]:
        """Sampling range of each size argument of ``SyntheticTask.batch``."""
        image = self.spec.input("image")
        ranges = {}
        for key, dim in (("height", image.shape[2]), ("width", image.shape[3])):
            low, high = dim_range(dim, self.spec)
            ranges[key] = (_clip(TRAINED_IMAGE_SIZES[0], low, high), _clip(TRAINED_IMAGE_SIZES[1], low, high))
        if self._with_audio:
            frames = self.spec.input("audio").shape[-1]
            low, high = dim_range(frames, self.spec)
            opt = self.spec.dims[frames].opt if isinstance(frames, str) else low
            ranges["frames"] = (low, _clip(2 * opt, low, high))
        return ranges

    def batches(self) -> Iterator[Batch]:
        return require_batches(self._batches(), self.description)

    def _batches(self) -> Iterator[Batch]:
        task = SyntheticTask(with_audio=self._with_audio, seed=self.seed)
        sizes = np.random.default_rng([self.seed, 1])  # apart from the task's stream
        seq_low, seq_high = dim_range(self.spec.input("tokens").shape[1], self.spec)
        seq = None if seq_high >= LONGEST_QUESTION else seq_high
        for index, start in enumerate(range(0, self.samples, self.batch_size)):
            n = min(self.batch_size, self.samples - start)
            if index < 2:
                point = {k: r[index] for k, r in self.ranges.items()}
            else:
                point = {k: int(sizes.integers(r[0], r[1] + 1)) for k, r in self.ranges.items()}
            feed, labels = task.batch(n, seq=seq, **point)
            tokens = feed["tokens"]
            if tokens.shape[1] < seq_low:
                feed["tokens"] = np.pad(
                    tokens, ((0, 0), (0, seq_low - tokens.shape[1])), constant_values=PAD_ID
                )
            names = tuple(f"synthetic/{self.split}/{start + j:05d}" for j in range(n))
            yield validate_batch(
                feed, self.spec, batch=f"synthetic batch {index}", labels=labels, names=names
            )

    def fingerprint(self) -> str:
        """Generator, seed, count, batching and size ranges, plus the first batch's bytes (so a
        change to the generator's code changes the fingerprint too)."""
        digest = new_digest("synthetic")
        params = {
            "builtin": self.builtin,
            "seed": self.seed,
            "samples": self.samples,
            "batch_size": self.batch_size,
            "ranges": self.ranges,
        }
        digest.update(json.dumps(params, sort_keys=True).encode())
        hash_batch(digest, next(self.batches()))
        return digest.hexdigest()


def _clip(value: int, low: int, high: int) -> int:
    return min(max(value, low), high)


__all__ = [
    "CALIBRATION_SAMPLES",
    "CALIBRATION_SEED",
    "EVALUATION_SAMPLES",
    "Batch",
    "Feed",
    "FeedSource",
    "IterableSource",
    "ShapeCoverage",
    "SyntheticSource",
    "open_source",
    "shape_coverage",
]
