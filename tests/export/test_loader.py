from __future__ import annotations

import pytest
import torch

from mmexport.core.errors import ModelLoadError, SpecError
from mmexport.core.spec import ModelSpec
from mmexport.export.loader import load_model


def test_file_factory_takes_the_spec_from_its_module(tiny_ref):
    loaded = load_model(tiny_ref)
    assert isinstance(loaded.module, torch.nn.Module)
    assert not loaded.module.training
    assert loaded.spec.input_names == ["image", "tokens", "imu"]
    assert loaded.builtin is False and loaded.name == "tiny"


def test_package_module_factory(tiny_spec_file):
    loaded = load_model("tiny_models:tiny", tiny_spec_file)
    assert loaded.reference == "tiny_models:tiny"


@pytest.mark.parametrize(
    ("reference", "fragment"),
    [
        ("nope.py:build", "file 'nope.py' does not exist"),
        ("tiny_models:missing", "has no attribute 'missing'"),
        ("tiny_models:not_a_module", "returned a str, not a torch.nn.Module"),
        ("tiny_models:raises", "the factory raised RuntimeError: weights not found"),
        ("no_such_package.mod:build", "module 'no_such_package.mod' cannot be found"),
        ("resnet", "is not a built-in model"),
        ("model.py", "names a file but no factory"),
    ],
)
def test_bad_references_are_clear(reference, fragment):
    with pytest.raises(ModelLoadError) as info:
        load_model(reference)
    assert fragment in str(info.value)


def test_spec_that_does_not_fit_forward_is_refused(tiny_ref):
    from tiny_models import TINY_SPEC

    data = {**TINY_SPEC, "inputs": [dict(i) for i in TINY_SPEC["inputs"]]}
    data["inputs"][2]["name"] = "accel"
    with pytest.raises(SpecError, match=r"input 'accel' is not a parameter of TinyFusion.forward"):
        load_model(tiny_ref, ModelSpec.from_dict(data))
    data["inputs"] = data["inputs"][:2]
    data["dims"] = {k: v for k, v in data["dims"].items() if k != "steps"}
    with pytest.raises(SpecError, match="needs 'imu', which the spec does not declare"):
        load_model(tiny_ref, ModelSpec.from_dict(data))


@pytest.mark.slow
def test_a_module_instance_exports_from_python(tmp_path):
    from mmexport.core.spec import ModelSpec
    from mmexport.export import to_onnx
    from tiny_models import TINY_SPEC, TinyFusion

    result = to_onnx(TinyFusion(), tmp_path / "m.onnx", spec=ModelSpec.from_dict(TINY_SPEC))
    assert result.parity.passed and result.manifest.source.model == "<TinyFusion instance>"
    with pytest.raises(ModelLoadError, match="needs spec="):
        to_onnx(TinyFusion(), tmp_path / "n.onnx")
    with pytest.raises(ModelLoadError, match=r"expected a model reference string or a torch\.nn\.Module"):
        to_onnx(42, tmp_path / "o.onnx")  # type: ignore[arg-type]
    assert not (tmp_path / "n.onnx").exists() and not (tmp_path / "o.onnx").exists()


def test_forward_with_only_star_args_is_refused_with_a_wrapper_hint():
    from mmexport.export.loader import check_signature

    class KwargsModel(torch.nn.Module):
        def forward(self, *inputs):
            return inputs[0]

    spec = ModelSpec.from_dict(
        {
            "inputs": [{"name": "image", "modality": "image", "dtype": "float32", "shape": ["b", 3]}],
            "outputs": ["y"],
            "dims": {"b": {"min": 1, "opt": 2, "max": 4}},
        }
    )
    with pytest.raises(SpecError, match=r"takes \*inputs.*wrap it in a module whose forward is \(image\)"):
        check_signature(KwargsModel(), spec)
