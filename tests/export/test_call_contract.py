"""How forward() is called: inputs by name (parameters or **kwargs), constant call_kwargs from the
spec, outputs picked by name from dicts, ModelOutputs and namedtuples."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mmexport.core.errors import SpecError
from mmexport.core.spec import ModelSpec
from mmexport.export.loader import check_signature
from mmexport.export.torch_runner import NotTensorsError, TorchRunner, pick_outputs, torch_outputs


def _spec(*names: str, outputs: tuple[str, ...] = ("y",), **extra: object) -> ModelSpec:
    return ModelSpec.from_dict(
        {
            "inputs": [
                {"name": n, "modality": "tensor", "dtype": "float32", "shape": ["b", 3]} for n in names
            ],
            "outputs": list(outputs),
            "dims": {"b": {"min": 1, "opt": 2, "max": 4}},
            **extra,
        }
    )


class KwargsOnly(torch.nn.Module):
    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return inputs["image"] * 2


class Mixed(torch.nn.Module):
    def forward(self, image: torch.Tensor, *, scale: float, **rest: torch.Tensor) -> torch.Tensor:
        return image * scale + rest["audio"]


def test_inputs_passed_through_kwargs_by_name_are_accepted():
    spec = _spec("image")
    check_signature(KwargsOnly(), spec)
    feed = spec.sample_feed(spec.example_point())
    (y,) = torch_outputs(KwargsOnly(), feed, names=["y"])
    np.testing.assert_allclose(y, feed["image"] * 2)


def test_call_kwargs_supply_a_required_keyword_only_parameter():
    spec = _spec("image", "audio", call_kwargs={"scale": 3})
    check_signature(Mixed(), spec)
    feed = spec.sample_feed(spec.example_point())
    out = TorchRunner(Mixed(), spec).run(feed)
    np.testing.assert_allclose(out["y"], feed["image"] * 3 + feed["audio"], rtol=1e-6)
    with pytest.raises(SpecError, match="needs 'scale'"):
        check_signature(Mixed(), _spec("image", "audio"))


def test_call_kwargs_must_name_a_parameter_and_not_an_input():
    class Plain(torch.nn.Module):
        def forward(self, image: torch.Tensor, use_cache: bool = True) -> torch.Tensor:
            return image

    check_signature(Plain(), _spec("image", call_kwargs={"use_cache": False}))
    with pytest.raises(SpecError, match=r"call_kwargs: .cache. is not a parameter of Plain\.forward"):
        check_signature(Plain(), _spec("image", call_kwargs={"cache": False}))
    with pytest.raises(SpecError, match="'image' is both an input and a constant"):
        check_signature(Plain(), _spec("image", call_kwargs={"image": 1}))


def test_call_kwargs_round_trip_and_take_json_scalars_only():
    spec = _spec("image", call_kwargs={"use_cache": False, "mode": "eval", "k": 2, "t": None})
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert "call_kwargs" not in _spec("image").to_dict()
    with pytest.raises(SpecError, match=r"call_kwargs: 'x' must be a string, number, boolean or null"):
        _spec("image", call_kwargs={"x": [1, 2]})
    with pytest.raises(SpecError, match="'call_kwargs' must be an object"):
        _spec("image", call_kwargs=[1])


@dataclass
class Batch:
    image: torch.Tensor


@pytest.mark.parametrize("annotation", [dict, "dict[str, torch.Tensor]", Batch, "Batch", None])
def test_a_forward_taking_one_container_is_refused_with_the_wrapper(annotation):
    def forward(self, batch):  # type: ignore[no-untyped-def]
        return batch["image"]

    if annotation is not None:
        forward.__annotations__["batch"] = annotation
    model = type("DictModel", (torch.nn.Module,), {"forward": forward})()
    names = ("image", "tokens") if annotation is None else ("batch",)
    with pytest.raises(SpecError) as info:
        check_signature(model, _spec(*names))
    message = str(info.value)
    assert message.splitlines()[0].startswith("spec: DictModel.forward takes one container (batch)")
    assert "class Wrapped(torch.nn.Module):" in message
    assert f"def forward(self, {', '.join(names)}): return self.model({{" in message


def test_a_misnamed_single_input_keeps_the_parameter_message():
    class One(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(
        SpecError, match=r"input 'image' is not a parameter of One.forward \(forward takes \(x\)\)"
    ):
        check_signature(One(), _spec("image"))


def test_outputs_are_picked_by_name_from_named_results():
    a, b = torch.ones(2), torch.zeros(3)
    assert pick_outputs({"extra": b, "y": a, "past": object()}, ["y"]) == [a]
    pair = namedtuple("Pair", ["z", "y"])
    assert pick_outputs(pair(b, a), ["y", "z"]) == [a, b]
    with pytest.raises(NotTensorsError, match="no 'z'"):
        pick_outputs({"y": a}, ["y", "z"])
    with pytest.raises(NotTensorsError, match="'y' is a object"):
        pick_outputs({"y": object()}, ["y"])


def test_tuples_drop_caches_and_none_but_keep_every_tensor():
    class DynamicCache:
        pass

    a, b, c = torch.ones(1), torch.ones(2), torch.ones(3)
    assert pick_outputs((a, DynamicCache(), None, b), ["y", "z"]) == [a, b]
    assert pick_outputs((a, b, c), ["y", "z"]) == [a, b, c]  # export then says the counts differ
    assert pick_outputs({"p": a, "q": b}, ["y", "z"]) == [a, b]  # no name matches: in order, as before


def test_transformers_model_output_is_picked_by_name():
    outputs = pytest.importorskip("transformers.modeling_outputs")
    logits, hidden = torch.ones(2, 5), torch.ones(2, 4, 8)
    result = outputs.SequenceClassifierOutput(logits=logits, hidden_states=(hidden,))
    assert pick_outputs(result, ["logits"]) == [logits]


class KeywordModel(torch.nn.Module):
    """forward(**inputs) with a constant flag, returning a dict with an extra entry."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, *, flag: bool, **inputs: torch.Tensor) -> dict[str, object]:
        y = self.fc(inputs["image"]) + inputs["audio"].sum(-1, keepdim=True)
        return {"hidden": inputs["image"], "y": y if flag else -y, "cache": None}


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_a_keyword_model_with_call_kwargs_exports_without_a_wrapper(tmp_path, exporter):
    from mmexport.export import to_onnx
    from mmexport.export.onnx_export import ExportConfig, dim_values

    spec = _spec("image", "audio", call_kwargs={"flag": True})
    result = to_onnx(KeywordModel().eval(), tmp_path / "m.onnx", spec=spec, export=ExportConfig(exporter))
    assert result.parity.passed and {r.output for r in result.parity.rows} == {"y"}
    assert dim_values(result.path) == {"image": ["b", 3], "audio": ["b", 3]}
