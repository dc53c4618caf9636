"""One part of a ``SplitSession`` as a runner of the whole model's feeds, to time parts side by side.

``PartRunner(pipe, "text").run(feeds)`` takes the model's feeds (so benchmark cases resolve as for
the pipeline), computes the part's inputs once per feed dict by running the pipeline up to it,
then runs only that part: its latency at exactly the shapes the pipeline gives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mmexport.runtime.runner import Runner
from mmexport.split.session import SplitSession


class PartRunner(Runner):
    """A ``Runner`` whose ``spec`` is the model's and whose ``run`` times only ``part``.

    Checking a new feed dict (``validate``: the pipeline's checks) also prepares what the upstream
    parts give this one, once per feed dict; ``run`` then runs the part alone on it.
    """

    def __init__(self, pipeline: SplitSession, part: str) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.part = part
        self._use_spec(pipeline.spec)
        self._session = pipeline.parts[part]
        self.backend_name = self._session.backend_name
        self._feeds: Mapping[str, np.ndarray] | None = None
        self._inputs: dict[str, np.ndarray] = {}

    def validate(self, feeds: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
        if feeds is not self._feeds:  # a new case: checked, and what the upstream parts give this one
            self._inputs = self.pipeline.part_inputs(feeds)[self.part]
            self._feeds = feeds
        return feeds

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._session.run(self._inputs)

    def describe(self) -> dict[str, Any]:
        entry = self.pipeline.composition.part(self.part)
        return {**self._session.describe(), "part": self.part, "precision": entry.precision}

    def __repr__(self) -> str:
        return f"PartRunner({self.pipeline!r}, {self.part!r})"


__all__ = ["PartRunner"]
