"""Data with a mask input (``mask_of``): a mask not given is made from its token input's padding,
and padding ids are not held to the token input's range where the mask is 0."""

from __future__ import annotations

import numpy as np
import pytest

from mmexport.core.errors import DataError
from mmexport.core.spec import ModelSpec
from mmexport.data.feed_files import read_feeds
from mmexport.data.feeds import padding_mask, validate_batch

TEXT = {"modality": "text", "dtype": "int64", "shape": ["batch", "seq"]}


def spec(mask: bool = True, pad: int | None = None) -> ModelSpec:
    ids = {"name": "input_ids", **TEXT, "range": [5, 50]}
    if pad is not None:
        ids["preprocess"] = {"kind": "tokens", "pad": pad}
    inputs = [ids, {"name": "attention_mask", **TEXT, **({"mask_of": "input_ids"} if mask else {})}]
    return ModelSpec.from_dict(
        {
            "inputs": inputs,
            "outputs": ["y"],
            "dims": {"batch": {"min": 1, "opt": 2, "max": 4}, "seq": {"min": 1, "opt": 4, "max": 8}},
        }
    )


IDS = np.array([[7, 8, 9, 10], [7, 8, 0, 0], [9, 0, 0, 0]])
MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])


def test_a_missing_mask_follows_the_padding():
    batch = validate_batch({"input_ids": IDS}, spec(), batch="b")
    assert batch.feed["attention_mask"].dtype == np.int64
    np.testing.assert_array_equal(batch.feed["attention_mask"], MASK)


def test_the_pad_id_of_the_token_input_is_used():
    ids = np.where(IDS == 0, 3, IDS)
    batch = validate_batch({"input_ids": ids}, spec(pad=3), batch="b")
    np.testing.assert_array_equal(batch.feed["attention_mask"], MASK)


def test_padding_outside_the_range_is_accepted_where_the_mask_is_zero():
    validate_batch({"input_ids": IDS, "attention_mask": MASK}, spec(), batch="b")
    with pytest.raises(DataError, match=r"values must be in \[5, 50\)"):  # a padding id that the mask keeps
        validate_batch({"input_ids": IDS, "attention_mask": np.ones_like(MASK)}, spec(), batch="b")
    with pytest.raises(DataError, match=r"attention_mask.*is missing"):  # no mask_of: nothing to derive
        validate_batch({"input_ids": IDS}, spec(mask=False), batch="b")


def test_padding_mask_keeps_pad_ids_inside_a_row():
    ids = np.array([[4, 0, 5, 0, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(padding_mask(ids, 0), [[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]])


def test_run_feeds_from_files_get_their_mask(tmp_path):
    np.save(tmp_path / "ids.npy", IDS)
    feeds = read_feeds([("input_ids", tmp_path / "ids.npy")], spec())
    np.testing.assert_array_equal(feeds["attention_mask"], MASK)
