"""Random feeds for a ModelSpec (``ModelSpec.sample_feed``): what the parity gate, the precision
stages and benchmarks run when no data is given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from mmexport.core.spec_checks import check_fits_memory
from mmexport.core.spec_schema import FLOAT_DTYPES

if TYPE_CHECKING:
    from mmexport.core.spec import InputSpec, ModelSpec, Shape


def random_feed(spec: ModelSpec, point: Mapping[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """``ModelSpec.sample_feed``: random, valid inputs at ``point``; normal floats, integers inside each
    input's range, token inputs with a mask padded at the end and their masks set to match."""
    check_fits_memory(spec, point, what="random inputs for the spec")  # before numpy allocates
    rng = np.random.default_rng(seed)
    masked = {i.mask_of for i in spec.inputs if i.mask_of is not None}
    feed: dict[str, np.ndarray] = {}
    lengths: dict[str, np.ndarray] = {}  # token input with a mask -> its rows' real lengths
    for i in spec.inputs:
        if i.mask_of is None:
            feed[i.name] = _sample(i, i.concrete_shape(point), rng, masked=i.name in masked, lengths=lengths)
    for i in spec.inputs:  # masks last: their token input may come after them
        if i.mask_of is not None:
            shape = i.concrete_shape(point)
            row = lengths.get(i.mask_of)
            real = np.ones(shape, bool) if row is None else np.arange(shape[-1]) < row[..., None]
            feed[i.name] = real.astype(i.dtype)
    return {i.name: feed[i.name] for i in spec.inputs}


def _sample(
    spec: InputSpec,
    shape: Shape,
    rng: np.random.Generator,
    *,
    masked: bool = False,
    lengths: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Random values of one input; token inputs with a pad id or a mask are padded at the end,
    their rows' lengths stored in ``lengths`` for the mask."""
    if spec.dtype in FLOAT_DTYPES:
        return rng.standard_normal(shape).astype(spec.dtype)
    if spec.dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    low, high = spec.range if spec.range is not None else (0, 2)
    values = rng.integers(low, high, shape)
    pad = spec.pad_id
    if pad is None and masked:
        pad = 0
    if pad is not None and len(shape) >= 1:
        # Token inputs with a pad id (or a mask) are padded at the end, as real batches are:
        # each row keeps a random number of tokens (at least one, the first row all of them).
        if len(shape) >= 2 and shape[-1] > 1:
            row = rng.integers(1, shape[-1] + 1, shape[:-1])
            row.flat[0] = shape[-1]
            values[np.arange(shape[-1]) >= row[..., None]] = pad
        else:
            row = np.full(shape[:-1], shape[-1])
        if lengths is not None:
            lengths[spec.name] = row
    return values.astype(spec.dtype)
