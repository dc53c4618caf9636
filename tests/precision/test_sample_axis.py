"""Each output's sample axis comes from its declared shape, else from the feed's batch sizes;
outputs need not share it."""

from __future__ import annotations

import numpy as np

from mmexport.core.spec import ModelSpec
from mmexport.precision.accuracy import (
    _Accumulator,
    _nonfinite_samples,
    batch_sizes,
    output_axis,
    sample_axis,
)


def test_the_sample_axis_is_the_axis_sized_like_a_batch():
    sizes = batch_sizes({"pixel_values": np.zeros((3, 3, 8, 8)), "input_ids": np.zeros((5, 7))})
    assert sizes == {3, 5}
    assert sample_axis((5, 16), sizes) == 0  # text embeddings: over texts
    assert sample_axis((3, 5), sizes) == 0  # image x text similarities: over images
    assert sample_axis((16, 5), sizes) == 1
    assert sample_axis((16, 3, 5), sizes) is None  # ambiguous: the whole output is one sample
    assert sample_axis((16,), sizes) is None
    assert sample_axis((), sizes) is None


def test_outputs_over_different_batches_count_their_own_nonfinite_samples():
    texts = np.zeros((5, 4), np.float32)
    images = np.zeros((3, 4), np.float32)
    texts[1, 0] = images[0, 0] = images[2, 1] = np.nan
    result = {"text_embeds": texts, "image_embeds": images}
    assert _nonfinite_samples(result, {"text_embeds": 0, "image_embeds": 0}) == 2
    assert _nonfinite_samples(result, {"text_embeds": None, "image_embeds": None}) == 1


def test_a_sample_axis_other_than_zero_is_compared_per_sample():
    reference = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])  # 3 samples along axis 1
    acc = _Accumulator("y", classifier=True)
    acc.update(reference.copy(), reference, axis=1)
    result = acc.result()
    assert acc.count == 3 and result.top1 == 1.0 and result.cosine_min == 1.0


def test_a_declared_shape_decides_where_the_batch_sizes_cannot():
    spec = ModelSpec.from_dict(
        {
            "inputs": [
                {"name": "pixel", "modality": "image", "dtype": "float32", "shape": ["images", 3, 8, 8]},
                {"name": "input_ids", "modality": "text", "dtype": "int64", "shape": ["texts", 7]},
            ],
            "outputs": [
                {"name": "scores", "shape": [16, "images", "texts"]},
                {"name": "pooled", "shape": [None, 16]},
                "logits",
            ],
            "dims": {"images": {"min": 1, "opt": 3, "max": 4}, "texts": {"min": 1, "opt": 3, "max": 4}},
        }
    )
    sizes = {3}  # images and texts of one size: the sizes alone cannot tell them apart
    assert sample_axis((16, 3, 3), sizes) is None
    assert output_axis(spec, "scores", (16, 3, 3), sizes) == 1
    assert output_axis(spec, "pooled", (3, 16), sizes) is None  # declared: no batch dim
    assert output_axis(spec, "logits", (3, 16), sizes) == 0  # not declared: from the sizes
