"""``read_mapped``: the graph in memory, the weights left in the file, the same model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mmexport.core.errors import ArtifactError
from mmexport.core.onnx_file import read_onnx, save_with_external_data
from mmexport.core.onnx_mapped import INLINE_LIMIT, read_mapped
from mmexport.runtime.backends.onnxrt.runner import OnnxModelRunner


def _model(path: Path) -> Path:
    """x [2, 64] -> MatMul (a 16 KB weight) -> Add (a 256-byte bias) -> Reshape (shape data) -> y."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.standard_normal(64).astype(np.float32), "b")
    shape = numpy_helper.from_array(np.array([2, 8, 8], dtype=np.int64), "shape")
    half = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float16), "unused_half")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Add", ["h", "b"], ["a"], name="add"),
        helper.make_node("Reshape", ["a", "shape"], ["y"], name="reshape"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8, 8])],
        initializer=[weight, bias, shape, half],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.metadata_props.add(key="k", value="v")
    onnx.save(model, str(path))
    return path


def _without_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.initializer[:]
    return copy


def test_large_weights_are_references_into_the_file_and_read_back_the_same(tmp_path: Path) -> None:
    path = _model(tmp_path / "m.onnx")
    mapped = read_mapped(path)
    full = onnx.load(str(path))
    assert _without_initializers(mapped.proto) == _without_initializers(full)
    assert [t.name for t in mapped.proto.graph.initializer] == [t.name for t in full.graph.initializer]
    external = {t.name for t in mapped.proto.graph.initializer if t.data_location == TensorProto.EXTERNAL}
    assert external == {"w", "unused_half"}  # over INLINE_LIMIT bytes; bias and shape stay inline
    data = path.read_bytes()
    for tensor, expected in zip(mapped.proto.graph.initializer, full.graph.initializer, strict=True):
        assert mapped.inline(tensor) == expected
        np.testing.assert_array_equal(mapped.array(tensor), numpy_helper.to_array(expected))
        if tensor.name in external:
            info = {e.key: e.value for e in tensor.external_data}
            start, length = int(info["offset"]), int(info["length"])
            assert info["location"] == "m.onnx" and length > INLINE_LIMIT
            assert data[start : start + length] == expected.raw_data
    assert mapped.proto.ByteSize() < 1000 < full.ByteSize() - 16_000


def test_onnxruntime_runs_a_mapped_model_on_the_files_weights(tmp_path: Path) -> None:
    path = _model(tmp_path / "m.onnx")
    mapped = read_mapped(path)
    feed = {"x": np.random.default_rng(1).standard_normal((2, 64)).astype(np.float32)}
    extra = [helper.make_tensor_value_info("h", TensorProto.FLOAT, [2, 64])]
    with (
        OnnxModelRunner(path, outputs=["y"]) as plain,
        OnnxModelRunner(mapped.with_outputs(extra), outputs=["y", "h"], weights_folder=mapped.folder) as ours,
    ):
        expected, got = plain.run(feed), ours.run(feed)
    np.testing.assert_array_equal(got["y"], expected["y"])
    assert got["h"].shape == (2, 64)
    assert len(mapped.proto.graph.output) == 1  # the extra output went into the serialized copy only


def test_a_model_with_its_own_data_file_keeps_its_references(tmp_path: Path) -> None:
    source = onnx.load(str(_model(tmp_path / "m.onnx")))
    path = tmp_path / "ext.onnx"
    save_with_external_data(source, path)
    mapped = read_mapped(path)
    locations = {
        e.value for t in mapped.proto.graph.initializer for e in t.external_data if e.key == "location"
    }
    assert locations == {"ext.onnx.data"}
    full = read_onnx(path)
    for tensor, expected in zip(mapped.proto.graph.initializer, full.graph.initializer, strict=True):
        np.testing.assert_array_equal(mapped.array(tensor), numpy_helper.to_array(expected))
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(
        ArtifactError, match=r"refers to external data 'ext\.onnx\.data', which does not exist"
    ):
        read_mapped(path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: b"\x08\x07garbage" * 10,
        lambda data: data[: len(data) // 2],
        lambda data: data[:3] + b"\xff" * 12 + data[15:],
    ],
    ids=["empty", "garbage", "truncated", "overwritten"],
)
def test_a_damaged_file_gets_the_readers_error(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    """Whatever ``read_onnx`` says of a damaged file, ``read_mapped`` says too (or, where the
    damage still parses, both give the same model)."""
    path = tmp_path / "bad.onnx"
    path.write_bytes(damage(_model(tmp_path / "m.onnx").read_bytes()))
    try:
        expected = read_onnx(path)
    except ArtifactError as e:
        with pytest.raises(ArtifactError) as caught:
            read_mapped(path)
        assert str(caught.value) == str(e)
        return
    mapped = read_mapped(path)
    assert _without_initializers(mapped.proto) == _without_initializers(expected)


def test_a_file_gone_before_onnxruntime_reads_its_weights_is_named(tmp_path: Path) -> None:
    from mmexport.precision.accuracy import graph_runner

    path = _model(tmp_path / "m.onnx")
    mapped = read_mapped(path)
    path.unlink()
    gone = rf"^{tmp_path}/m\.onnx: onnxruntime cannot load it"
    with pytest.raises(ArtifactError, match=gone), graph_runner(mapped):
        pass


def test_a_tensor_with_raw_data_and_external_entries_is_left_to_the_full_parser(tmp_path: Path) -> None:
    """Raw bytes beside stray external-data entries: the model is parsed whole (nothing of the
    file is pointed at), as ``read_onnx`` gives it."""
    model = onnx.load(str(_model(tmp_path / "m.onnx")))
    model.graph.initializer[0].external_data.add(key="location", value="elsewhere.bin")
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    mapped = read_mapped(path)
    assert mapped.proto == read_onnx(path, external_data=False)


@pytest.mark.parametrize("how", ["in place", "replaced"])
def test_a_file_written_over_after_reading_is_refused(tmp_path: Path, how: str) -> None:
    """onnxruntime reads a mapped model's weights from the file: a file changed after its graph
    (and sha256) were read is refused by name instead of giving figures for other weights."""
    import os

    from mmexport.precision.accuracy import graph_runner

    path = _model(tmp_path / "m.onnx")
    mapped = read_mapped(path)
    data = bytearray(path.read_bytes())
    data[-40] ^= 0xFF  # a weight byte
    if how == "in place":
        with open(path, "r+b") as f:
            f.write(data)
        os.utime(path, ns=(0, 1))  # whatever the clock's resolution
    else:
        other = tmp_path / "new.onnx"
        other.write_bytes(bytes(data))
        other.replace(path)
    with (
        pytest.raises(ArtifactError, match=r"m\.onnx: changed while it was being read"),
        graph_runner(mapped),
    ):
        pass
