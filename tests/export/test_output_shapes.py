"""An output's declared ``shape``: checked against the model, naming the ONNX output's axes, and
giving accuracy reports each output's own sample axis (CLIP-style outputs over two batches)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from mmexport.core.errors import SpecError
from mmexport.core.spec import ModelSpec
from mmexport.export.onnx_export import check_outputs, export_onnx


class TwoBatches(torch.nn.Module):
    """Images and texts in batches of their own; a similarity matrix over both."""

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img = image.mean(dim=(2, 3))  # [images, 3]
        txt = text.float().mean(dim=1, keepdim=True).expand(-1, 3)  # [texts, 3]
        return txt @ img.T, img


def _spec(similarity: object = ("texts", "images"), embeds: list | None = None) -> ModelSpec:
    shape = list(similarity) if isinstance(similarity, tuple) else similarity
    outputs: list = [{"name": "similarity", "shape": shape} if similarity else "similarity"]
    outputs.append({"name": "image_embeds", "shape": embeds} if embeds else "image_embeds")
    return ModelSpec.from_dict(
        {
            "inputs": [
                {"name": "image", "modality": "image", "dtype": "float32", "shape": ["images", 3, 4, 4]},
                {"name": "text", "modality": "text", "dtype": "int64", "shape": ["texts", 5]}
                | {"range": [0, 9]},
            ],
            "outputs": outputs,
            "dims": {"images": {"min": 1, "opt": 2, "max": 4}, "texts": {"min": 1, "opt": 3, "max": 4}},
        }
    )


def test_a_declared_shape_gives_each_output_its_sample_axis():
    spec = _spec(embeds=["images", 3])
    assert spec.sample_axis_of("similarity") == 0  # texts: the text input's batch dim
    assert spec.sample_axis_of("image_embeds") == 0
    assert ModelSpec.from_dict(_spec(similarity=[1, "images"]).to_dict()).sample_axis_of("similarity") == 1
    assert _spec(similarity=[None, 3]).sample_axis_of("similarity") is None  # one sample
    with pytest.raises(KeyError):
        _spec(similarity=None).sample_axis_of("similarity")
    assert ModelSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (["texts", "imagez"], r"'similarity': shape names dim 'imagez', which 'dims' does not declare"),
        ("texts", r"output 'similarity': shape must be a list .* got 'texts'"),
        ([0, "images"], r"shape must be a list .*ints >= 1"),
        ([True, "images"], r"shape must be a list"),
    ],
)
def test_a_bad_declared_shape_is_one_spec_error(shape, message):
    with pytest.raises(SpecError, match=message):
        _spec(similarity=shape)


def test_the_model_must_return_the_declared_shape():
    spec = _spec(similarity=["images", "texts"])  # transposed
    feed = spec.sample_feed(spec.example_point(), seed=0)
    with pytest.raises(SpecError, match=r"'similarity': the model returns shape \[3, 2\] but the spec"):
        check_outputs(TwoBatches(), spec, feed)
    check_outputs(TwoBatches(), _spec(), feed)  # as declared: no error


@pytest.mark.slow
def test_declared_dims_name_the_onnx_output_axes(tmp_path: Path):
    path = tmp_path / "m.onnx"
    export_onnx(TwoBatches().eval(), _spec(embeds=["images", 3]), path)
    outputs = {o.name: o for o in onnx.load(str(path)).graph.output}
    dims = [d.dim_param or d.dim_value for d in outputs["similarity"].type.tensor_type.shape.dim]
    assert dims == ["texts", "images"]
