"""``read_onnx``: one reader, one message per fault."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mmexport.core.errors import ArtifactError
from mmexport.core.onnx_file import NO_GRAPH, graph_tensors, read_onnx, save_with_external_data
from runtime.onnx_models import tiny_graph, write_tiny


def test_reads_a_model(tmp_path: Path) -> None:
    model = read_onnx(write_tiny(tmp_path))
    assert [i.name for i in model.graph.input] == ["image", "tokens"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "none.onnx", r"none\.onnx: does not exist"),
        (lambda d: d, "is not a file"),
    ],
    ids=["missing", "folder"],
)
def test_missing_file_or_folder(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ArtifactError, match=message):
        read_onnx(make(tmp_path))


def test_garbage_is_not_parsed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ArtifactError, match=r"bad\.onnx: cannot be parsed as ONNX \(DecodeError"):
        read_onnx(bad)


@pytest.mark.parametrize("content", [b"", b"\x12\x00"], ids=["empty", "no-graph"])
def test_a_file_without_a_graph(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(content)
    with pytest.raises(ArtifactError) as info:
        read_onnx(path, external_data=False)
    assert str(info.value) == f"{path}: {NO_GRAPH}"


def test_nodes_refuses_a_graph_without_nodes(tmp_path: Path) -> None:
    path = tmp_path / "hollow.onnx"
    onnx.save(helper.make_model(helper.make_graph([], "hollow", [], [])), str(path))
    assert not read_onnx(path).graph.node
    with pytest.raises(ArtifactError, match="has no graph"):
        read_onnx(path, nodes=True)


def _external(folder: Path) -> Path:
    model = tiny_graph()
    model.graph.initializer.append(numpy_helper.from_array(np.arange(4, dtype=np.float32), "w"))
    model.graph.node.append(helper.make_node("Identity", ["w"], ["w_out"]))
    model.graph.output.append(helper.make_tensor_value_info("w_out", TensorProto.FLOAT, [4]))
    path = folder / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="model.onnx.data", size_threshold=0)
    return path


def test_external_data_is_read_unless_asked_not_to(tmp_path: Path) -> None:
    path = _external(tmp_path)
    weights = {t.name: t for t in read_onnx(path).graph.initializer}
    np.testing.assert_array_equal(numpy_helper.to_array(weights["w"]), np.arange(4, dtype=np.float32))
    lazy = {t.name: t for t in read_onnx(path, external_data=False).graph.initializer}
    assert not lazy["w"].raw_data
    assert any(t.name == "w" for t in graph_tensors(read_onnx(path, external_data=False).graph))


def test_missing_external_data_is_named(tmp_path: Path) -> None:
    path = _external(tmp_path)
    (tmp_path / "model.onnx.data").unlink()
    with pytest.raises(
        ArtifactError, match=r"refers to external data 'model\.onnx\.data', which does not exist"
    ):
        read_onnx(path)
    read_onnx(path, external_data=False)  # the graph alone needs no weights


def _weighted_model() -> onnx.ModelProto:
    """y = x @ W + b, with W large enough for the data file (raw data) and b given as float_data."""
    weight = np.arange(64 * 32, dtype=np.float32).reshape(64, 32) / 100
    w = numpy_helper.from_array(weight, "W")
    b = helper.make_tensor("b", TensorProto.FLOAT, [32], [float(i) for i in range(32)] * 1)
    big_b = helper.make_tensor("c", TensorProto.FLOAT, [32, 16], np.ones(512).tolist())  # float_data
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["y"]),
        helper.make_node("MatMul", ["y", "c"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 16])],
        [w, b, big_b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_external_data_copy_leaves_the_model_and_runs_the_same(tmp_path: Path) -> None:
    """The written copy keeps every value (raw and typed data), adds the extra outputs, and the
    caller's proto is not emptied (onnx's own external-data save moves the weights out of it)."""
    import onnxruntime as ort

    model = _weighted_model()
    before = model.SerializeToString()
    extra = [helper.make_tensor_value_info("h", TensorProto.FLOAT, None)]
    data = save_with_external_data(model, tmp_path / "m.onnx", extra_outputs=extra)
    assert model.SerializeToString() == before
    written = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)
    external = {t.name for t in written.graph.initializer if t.data_location == TensorProto.EXTERNAL}
    assert external == {"W", "c"}  # b is under the threshold and stays inline
    offsets = [int(e.value) for t in written.graph.initializer for e in t.external_data if e.key == "offset"]
    assert all(o % 4096 == 0 for o in offsets) and data.is_file()
    assert [o.name for o in written.graph.output] == ["z", "h"]
    x = np.linspace(-1, 1, 128, dtype=np.float32).reshape(2, 64)
    ours = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(before, providers=["CPUExecutionProvider"])
    z, h = ours.run(["z", "h"], {"x": x})
    np.testing.assert_array_equal(z, reference.run(["z"], {"x": x})[0])
    np.testing.assert_allclose(h, x @ numpy_helper.to_array(model.graph.initializer[0]), rtol=1e-5)


def test_streamed_save_writes_the_bytes_onnx_save_writes(tmp_path: Path) -> None:
    from mmexport.core.onnx_file import save_model_streamed

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(
            rng.normal(size=(300, 200)).astype(np.float32), "w"
        ),  # > 127 bytes: 2+ byte lengths
        helper.make_tensor("b", TensorProto.FLOAT, [2], [0.5, -1.0]),  # float_data, not raw bytes
        numpy_helper.from_array(np.zeros(0, dtype=np.float32), "empty"),
    ]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 300])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 200])],
        inits,
        doc_string="after the initializers",
        value_info=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 200])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], doc_string="d")
    model.metadata_props.add(key="k", value="v")  # a field after the graph
    before = model.SerializeToString()
    save_model_streamed(model, tmp_path / "streamed.onnx")
    onnx.save(model, str(tmp_path / "saved.onnx"))
    assert (tmp_path / "streamed.onnx").read_bytes() == (tmp_path / "saved.onnx").read_bytes()
    assert model.SerializeToString() == before
    empty = helper.make_model(helper.make_graph([], "e", [], []))  # no initializers at all
    save_model_streamed(empty, tmp_path / "e1.onnx")
    onnx.save(empty, str(tmp_path / "e2.onnx"))
    assert (tmp_path / "e1.onnx").read_bytes() == (tmp_path / "e2.onnx").read_bytes()
