"""Built-in reference models: specs, shipped weights, padding behaviour and accuracy."""

from __future__ import annotations

import inspect
from types import ModuleType

import numpy as np
import pytest
import torch

from mmexport.data.synthetic import HELDOUT_SEED, PAD_ID, SyntheticTask
from mmexport.models import fusion, get_builtin, seed
from mmexport.models.layers import last_valid

MODULES = {"seed": seed, "fusion": fusion}


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {name: module.build() for name, module in MODULES.items()}


def _task(name: str, rng_seed: int) -> SyntheticTask:
    return SyntheticTask(with_audio=name == "fusion", seed=rng_seed)


def _run(model: torch.nn.Module, module: ModuleType, feed: dict[str, np.ndarray]) -> torch.Tensor:
    names = [spec["name"] for spec in module.SPEC["inputs"]]
    with torch.no_grad():
        return model(*(torch.from_numpy(feed[n]) for n in names))


@pytest.mark.parametrize("name", list(MODULES))
def test_spec_matches_model(name: str, models: dict[str, torch.nn.Module]) -> None:
    module = MODULES[name]
    spec = module.SPEC
    model = models[name]
    description = get_builtin(name).description
    assert isinstance(description, str) and "\n" not in description
    assert not model.training
    params = list(inspect.signature(model.forward).parameters)
    assert params == [entry["name"] for entry in spec["inputs"]]
    named_dims = {d for entry in spec["inputs"] for d in entry["shape"] if isinstance(d, str)}
    assert named_dims == set(spec["dims"])
    for dim in spec["dims"].values():
        assert dim["min"] <= dim["opt"] <= dim["max"]
    assert spec["outputs"][0]["name"] == ("probs" if name == "seed" else "logits")
    assert module.WEIGHTS.stat().st_size < 2 * 1024 * 1024


@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("corner", ["min", "mixed"])
def test_output_shape_at_corners(name: str, corner: str, models: dict[str, torch.nn.Module]) -> None:
    module = MODULES[name]
    dims = module.SPEC["dims"]
    sizes = {key: value["min"] for key, value in dims.items()}
    if corner == "mixed":  # large spatial/time dims with a small batch keeps this quick
        sizes.update(batch=2, height=dims["height"]["max"], seq=dims["seq"]["max"])
        if "frames" in dims:
            sizes["frames"] = dims["frames"]["max"]
    feed, _ = _task(name, 11).batch(
        sizes["batch"],
        height=sizes["height"],
        width=sizes["width"],
        seq=sizes["seq"],
        frames=sizes.get("frames"),
    )
    out = _run(models[name], module, feed)
    assert out.shape == (sizes["batch"], len(module.SPEC["outputs"][0]["labels"]))
    assert torch.isfinite(out).all()
    if name == "seed":
        torch.testing.assert_close(out.sum(dim=1), torch.ones(sizes["batch"]))


@pytest.mark.parametrize("name", list(MODULES))
def test_trailing_padding_does_not_change_output(name: str, models: dict[str, torch.nn.Module]) -> None:
    module = MODULES[name]
    feed, _ = _task(name, 12).batch(6, height=48, width=64, frames=40)
    padded = dict(feed)
    padded["tokens"] = np.pad(feed["tokens"], ((0, 0), (0, 9)), constant_values=PAD_ID)
    torch.testing.assert_close(
        _run(models[name], module, padded), _run(models[name], module, feed), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("name", list(MODULES))
def test_all_padding_rows_stay_finite(name: str, models: dict[str, torch.nn.Module]) -> None:
    module = MODULES[name]
    feed, _ = _task(name, 13).batch(3, height=32, width=32, seq=5, frames=16)
    feed["tokens"][1:] = PAD_ID
    out = _run(models[name], module, feed)
    assert torch.isfinite(out).all()


def test_seed_summary_is_the_last_valid_step(models: dict[str, torch.nn.Module]) -> None:
    model = models["seed"]
    tokens = torch.tensor([[5, 6, 7, 0, 0], [5, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    with torch.no_grad():
        sequence, _ = model.gru(model.embedding(tokens))
        picked = last_valid(sequence, tokens, PAD_ID)
    torch.testing.assert_close(picked[0], sequence[0, 2])
    torch.testing.assert_close(picked[1], sequence[1, 0])
    torch.testing.assert_close(picked[2], sequence[2, 0])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODULES))
def test_shipped_weights_are_accurate_at_opt_sizes(name: str, models: dict[str, torch.nn.Module]) -> None:
    module = MODULES[name]
    opt = {key: value["opt"] for key, value in module.SPEC["dims"].items()}
    correct = 0
    for feed, labels in _task(name, HELDOUT_SEED).samples(
        256, 64, height=opt["height"], width=opt["width"], seq=opt["seq"], frames=opt.get("frames")
    ):
        correct += int((_run(models[name], module, feed).argmax(dim=1).numpy() == labels).sum())
    assert correct / 256 >= 0.9
