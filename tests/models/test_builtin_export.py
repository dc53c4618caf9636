"""The built-in models export with every dim dynamic and run at every corner of their spec."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from mmexport.core.manifest import read_manifest
from mmexport.export.onnx_export import dim_values
from mmexport.export.parity import torch_outputs
from mmexport.models import DEFAULT_MODEL, builtin_names, get_builtin


def corner_points(spec) -> list[dict[str, int]]:
    """All-min, all-opt, all-max, and each dynamic dim at its min and max with the rest at opt."""
    points = [spec.point("min"), spec.point("opt"), spec.point("max")]
    for dim in spec.dynamic_dims:
        for value in (dim.min, dim.max):
            points.append({**spec.point("opt"), dim.name: value})
    return points


@pytest.mark.slow
@pytest.mark.parametrize("name", builtin_names())
def test_builtin_exports_and_runs_at_every_corner(name, builtin_export):
    result = builtin_export(name)  # to_onnx(name) with default settings, shared by the session
    spec = get_builtin(name).spec
    assert result.parity.passed
    graph_dims = dim_values(result.path)
    for inp in spec.inputs:
        assert graph_dims[inp.name] == list(inp.shape), "every named dim symbolic, under its spec name"
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    module = get_builtin(name).build()
    for k, point in enumerate(corner_points(spec)):
        feed = spec.sample_feed(point, seed=k)
        (actual,) = session.run(None, feed)
        (expected,) = torch_outputs(module, feed)
        assert actual.shape == expected.shape and actual.shape[0] == point["batch"]
        assert np.isfinite(actual).all()
        np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-3, err_msg=str(point))
    manifest = read_manifest(result.path)
    assert manifest.source.to_dict() == {"model": name, "builtin": True}


def test_default_model_is_fusion_with_three_modalities():
    assert DEFAULT_MODEL == "fusion" == builtin_names()[0]
    spec = get_builtin(DEFAULT_MODEL).spec
    assert {i.modality for i in spec.inputs} == {"image", "text", "audio"}
    # each modality has its own dynamic dims; batch is shared
    dims = {i.modality: set(i.dim_names) - {"batch"} for i in spec.inputs}
    assert dims["image"] == {"height", "width"} and dims["text"] == {"seq"} and dims["audio"] == {"frames"}
