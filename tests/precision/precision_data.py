"""Feeds and labels of the tiny model, shared by the precision tests."""

from __future__ import annotations

import numpy as np

LABELS = ["a", "b", "c", "d", "e"]


def tiny_feeds(count: int, seed: int = 0, batch: int = 2) -> list[dict[str, np.ndarray]]:
    """Valid feeds of the tiny model at a few shapes."""
    rng = np.random.default_rng(seed)
    feeds = []
    for i in range(count):
        h = 8 + 4 * (i % 3)
        feeds.append(
            {
                "image": rng.normal(size=(batch, 3, h, h)).astype(np.float32),
                "tokens": rng.integers(0, 20, size=(batch, 3 + i % 4)).astype(np.int64),
                "imu": rng.normal(size=(batch, 4 + i % 5, 6)).astype(np.float32),
            }
        )
    return feeds
