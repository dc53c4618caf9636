"""How much memory this machine has: the bound on feeds the runtime and the file readers accept."""

from __future__ import annotations

import os


def physical_memory() -> int | None:
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


MAX_FEED_BYTES = physical_memory()
"""Feeds larger than this (all inputs together, at the spec's dtypes) are refused."""
