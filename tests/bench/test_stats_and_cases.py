from __future__ import annotations

import numpy as np
import pytest

from mmexport.bench import LatencyStats, ShapeCase, build_cases, parse_shapes, resolve_point
from mmexport.core.errors import InputError
from mmexport.core.spec import ModelSpec
from runtime.onnx_models import SPEC


def test_stats():
    s = LatencyStats.from_ms(np.arange(1, 101, dtype=float))
    assert (s.count, s.min, s.max, s.mean) == (100, 1.0, 100.0, 50.5)
    assert s.p50 == pytest.approx(50.5) and s.p90 == pytest.approx(90.1) and s.p99 == pytest.approx(99.01)
    assert s.calls_per_s == pytest.approx(100 / 5.05)
    assert set(s.to_dict()) == {"count", "mean", "std", "min", "p50", "p90", "p95", "p99", "max", "total_s"}


def test_parse_shapes():
    assert parse_shapes("image=1x3x64x64,tokens=1x8") == {"image": (1, 3, 64, 64), "tokens": (1, 8)}
    for bad in ("image", "image=", "image=1xAx3", "image=0x3", "=1x2"):
        with pytest.raises(ValueError, match="is not NAME=AxBxC"):
            parse_shapes(bad)


def test_build_cases():
    assert [c.label for c in build_cases()] == ["opt"]
    assert [c.label for c in build_cases(sweep=True)] == ["min", "opt", "max"]
    cases = build_cases([{"image": (1, 3, 8, 8)}], batches=[1, 8])
    assert [c.label for c in cases] == ["image=1x3x8x8 batch 1", "image=1x3x8x8 batch 8"]


def test_resolve_point_follows_shared_dims():
    spec = ModelSpec.from_dict(SPEC)
    point = resolve_point(spec, ShapeCase("x", shapes={"image": (3, 3, 12, 10)}))
    assert point == {"batch": 3, "height": 12, "width": 10, "seq": 5}
    assert resolve_point(spec, ShapeCase("x", corner="max", batch=2))["batch"] == 2
    with pytest.raises(InputError, match="axis 1 must be 3"):
        resolve_point(spec, ShapeCase("x", shapes={"image": (1, 4, 8, 8)}))
    with pytest.raises(InputError, match="is not an input"):
        resolve_point(spec, ShapeCase("x", shapes={"audio": (1, 4)}))
    with pytest.raises(InputError, match="dim 'batch' is 2 here but 1 elsewhere"):
        resolve_point(spec, ShapeCase("x", shapes={"image": (1, 3, 8, 8), "tokens": (2, 5)}))
    with pytest.raises(InputError, match="without a manifest, dim 'seq' has no opt size"):
        resolve_point(spec, ShapeCase("x", shapes={"image": (1, 3, 8, 8)}), ranged=False)


def test_repeated_cases_are_measured_once():
    shapes = [{"image": (1, 3, 8, 8)}, {"image": (1, 3, 8, 8)}]
    cases = build_cases(shapes, sweep=True, batches=[2, 2])
    labels = [c.label for c in cases]
    assert labels == ["image=1x3x8x8 batch 2", "min batch 2", "opt batch 2", "max batch 2"]
    assert len(set(labels)) == len(labels)
    assert [c.label for c in build_cases(batches=[4, 4])] == ["opt batch 4"]


def test_batch_contradicting_a_shape_is_refused():
    spec = ModelSpec.from_dict(SPEC)
    case = ShapeCase("image=1x3x8x8 batch 4", shapes={"image": (1, 3, 8, 8)}, batch=4)
    with pytest.raises(InputError, match=r"--shape image=1x3x8x8 has batch 1 but --batch is 4"):
        resolve_point(spec, case)
    same = ShapeCase("image=4x3x8x8 batch 4", shapes={"image": (4, 3, 8, 8)}, batch=4)
    assert resolve_point(spec, same)["batch"] == 4
