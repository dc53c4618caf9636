"""``mmexport build`` against the fake tensorrt of each generation and, for tests taking ``any_trt``,
real TensorRT (marked ``trt``). Tests taking ``fake_trt`` assert on what the fake records
(``module.calls``) or use its controls (``module.fake``): they cannot run on real TensorRT."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import onnx
import pytest
from onnx import TensorProto, helper

from mmexport.core.errors import ArtifactError, EngineBuildError, MissingDependencyError
from mmexport.core.files import sha256_file
from mmexport.core.manifest import Manifest, Source, read_manifest
from mmexport.core.spec import ModelSpec
from mmexport.precision import calib_cache
from mmexport.runtime.backends.tensorrt.api import generation
from mmexport.trt.build_options import BuildOptions, check_against_target, check_build_machine, parse_size
from mmexport.trt.build_stage import build_engine
from mmexport.trt.builder import add_profiles, network_inputs
from mmexport.trt.calibrator import find_cache, load_cache, make_calibrator
from mmexport.trt.profiles import Profile
from mmexport.trt.targets import get_target

from .fakes import is_fake

SPEC = {
    "inputs": [
        {"name": "image", "modality": "image", "dtype": "float32", "shape": ["batch", 3, 8, 8]},
        {"name": "tokens", "modality": "text", "dtype": "int64", "shape": ["batch", "seq"]},
    ],
    "outputs": ["logits"],
    "dims": {"batch": {"min": 1, "opt": 2, "max": 8}, "seq": {"min": 1, "opt": 4, "max": 16}},
}


def tiny_artifact(folder: Path, precision: str = "fp32") -> Path:
    """A four-node ONNX (ReduceMean, Cast, ReduceMean, Add) and its manifest, built in code."""
    nodes = [
        helper.make_node("ReduceMean", ["image", "hw"], ["pooled"], name="pool", keepdims=0),
        helper.make_node("Cast", ["tokens"], ["tok_f"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["tok_f", "one"], ["tok_mean"], name="mean_tokens", keepdims=1),
        helper.make_node("Add", ["pooled", "tok_mean"], ["logits"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8]),
            helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [
            helper.make_tensor("hw", TensorProto.INT64, [2], [2, 3]),
            helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = folder / "tiny.onnx"
    onnx.save(model, str(path))
    Manifest(
        "onnx",
        path.name,
        sha256_file(path),
        ModelSpec.from_dict(SPEC),
        precision,
        source=Source(model="tiny"),
    ).write(path)
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return tiny_artifact(tmp_path)


def options(target: str = "gpu", **kwargs: object) -> BuildOptions:
    return BuildOptions(target=get_target(target), **kwargs)  # type: ignore[arg-type]


def calls(trt: ModuleType, what: str) -> list[object]:
    return [details for name, details in trt.calls if name == what]


def strong(trt: ModuleType) -> int:
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def test_build_writes_plan_and_engine_manifest(any_trt: ModuleType, tiny: Path) -> None:
    out = tiny.with_name("tiny.engine")
    build_engine(tiny, out, options(workspace_bytes=parse_size("512M"), opt_level=2))
    manifest = read_manifest(out)
    assert manifest is not None and manifest.kind == "engine" and manifest.precision == "fp32"
    assert manifest.spec.to_dict()["dims"] == SPEC["dims"]
    engine = manifest.producer.details["engine"]
    assert engine["tensorrt_version"] == any_trt.__version__
    assert engine["target"] == "gpu" and engine["platform"].startswith("linux")
    assert "unknown" not in (engine["gpu_name"], engine["compute_capability"])
    if is_fake(any_trt):
        assert (engine["gpu_name"], engine["compute_capability"]) == ("NVIDIA H100 80GB HBM3", "9.0")
    assert engine["source_sha256"] == manifest.source.onnx_sha256
    assert engine["profiles"][0]["tokens"] == [[1, 1], [2, 4], [8, 16]]
    assert engine["strongly_typed"] is True and engine["build_seconds"] >= 0


def test_build_configures_the_builder(fake_trt: ModuleType, tiny: Path) -> None:
    """Fake only: asserts on the calls the fake records."""
    out = tiny.with_name("tiny.engine")
    build_engine(tiny, out, options(workspace_bytes=parse_size("512M"), opt_level=2))
    assert out.read_bytes().startswith(b"FAKE-PLAN ")  # the raw plan, no header of ours
    assert calls(fake_trt, "create_network") == [strong(fake_trt)]
    assert calls(fake_trt, "set_memory_pool_limit") == [("WORKSPACE", 512 << 20)]
    assert calls(fake_trt, "parse_from_file") == [str(tiny)]


def test_extra_profiles_reach_the_builder(fake_trt: ModuleType, tiny: Path) -> None:
    """Fake only: asserts on the profiles the fake builder was given."""
    build_engine(tiny, tiny.with_name("t.engine"), options(profiles=("batch=1:1:1", "batch=4:8:8,seq=16")))
    added = calls(fake_trt, "add_optimization_profile")
    assert len(added) == 3
    assert added[1]["image"] == ((1, 3, 8, 8),) * 3  # type: ignore[index]
    assert added[2]["tokens"] == ((4, 16), (8, 16), (8, 16))  # type: ignore[index]


def test_fp16_flag_on_a_weakly_typed_network_only_on_tensorrt_10(any_trt: ModuleType, tiny: Path) -> None:
    out = tiny.with_name("t.engine")
    if generation(any_trt) >= 11:
        with pytest.raises(EngineBuildError, match=r"TensorRT 11 builds strongly typed.*mmexport fp16"):
            build_engine(tiny, out, options(precision="fp16"))
        assert not out.exists()
        return
    build_engine(tiny, out, options(precision="fp16"))
    manifest = read_manifest(out)
    assert manifest is not None and manifest.precision == "fp16"
    engine = manifest.producer.details["engine"]
    assert engine["builder_flags"] == ["FP16"] and engine["strongly_typed"] is False
    if is_fake(any_trt):
        assert calls(any_trt, "create_network") == [0]
        assert calls(any_trt, "set_flag") == ["FP16"]


def test_implicit_int8_reads_the_cache_beside_the_onnx(fake_trt: ModuleType, tiny: Path) -> None:
    """Fake only: asserts on the calibration cache the fake builder read."""
    cache = calib_cache.format_cache({"pooled": 0.01, "logits": 0.02}, "minmax", "10.3.0")
    tiny.with_name("tiny.int8.calib").write_text(cache)
    out = tiny.with_name("t.engine")
    if generation(fake_trt) >= 11:
        with pytest.raises(EngineBuildError, match="mmexport calibrate"):
            build_engine(tiny, out, options(precision="int8"))
        return
    build_engine(tiny, out, options(precision="int8"))
    assert sorted(calls(fake_trt, "set_flag")) == ["FP16", "INT8"]  # type: ignore[type-var]
    assert calls(fake_trt, "calibrator_init") == ["CacheOnlyCalibrator"]
    assert fake_trt.fake.builder.builds[-1]["calibration_cache"] == cache.encode()
    assert calls(fake_trt, "set_calibration_profile")
    assert read_manifest(out).producer.details["calibration_cache"]["tensors"] == 2  # type: ignore[union-attr]


def test_calibrator_matches_the_cache_header_and_only_reads(tmp_path: Path) -> None:
    from .fakes import fake_tensorrt

    trt = fake_tensorrt("10.3.0")
    path = tmp_path / "m.calib"
    path.write_text(calib_cache.format_cache({"x": 0.5}, "entropy", "10.0.0"))
    cache = load_cache(path, "10.3.0")
    assert "retargeted" in cache.notes[0] and cache.data.startswith(b"TRT-100300-EntropyCalibration2")
    calibrator = make_calibrator(trt, cache)
    assert isinstance(calibrator, trt.IInt8EntropyCalibrator2)
    assert calibrator.get_batch(["x"]) is None
    assert calibrator.read_calibration_cache() == cache.data
    with pytest.raises(ArtifactError, match="mmexport calibrate"):
        find_cache(tmp_path / "other.onnx", None)


def test_timing_cache_is_loaded_and_saved(fake_trt: ModuleType, tiny: Path) -> None:
    """Fake only: asserts on the bytes the fake was given."""
    cache_file = tiny.with_name("trt.cache")
    build_engine(tiny, tiny.with_name("a.engine"), options(timing_cache=cache_file))
    assert calls(fake_trt, "create_timing_cache") == [b""]  # a new cache the first time
    first = cache_file.read_bytes()
    assert first.startswith(b"FAKE-TIMING-CACHE")
    build_engine(tiny, tiny.with_name("b.engine"), options(timing_cache=cache_file))
    assert calls(fake_trt, "create_timing_cache")[-1] == first  # the second build starts from it
    assert cache_file.read_bytes().count(b"tactics") == 2


def on_orin(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine becomes a Jetson AGX Orin: platform and the fake GPU's compute capability."""
    monkeypatch.setattr("mmexport.trt.build_stage.current_platform", lambda: "linux-aarch64-jetson")
    monkeypatch.setattr("mmexport.trt.build_stage.gpu_identity", lambda: ("Orin (nvgpu)", "8.7"))


def test_dla_refuses_dynamic_shapes_and_builds_static(
    fake_trt: ModuleType, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fake only: DLA cores and the layers DLA cannot run are the fake's controls."""
    on_orin(monkeypatch)
    if generation(fake_trt) >= 11:  # 11.4.0 has neither Jetson nor DLA support
        with pytest.raises(EngineBuildError, match=r"TensorRT 11.4.0.106 does not support Jetson"):
            build_engine(tiny, tiny.with_name("t.engine"), options("jetson-orin", dla_core=0))
        return
    fake_trt.fake.builder.dla_cores = 2
    fake_trt.fake.builder.dla_unsupported_ops = {"Cast"}
    out = tiny.with_name("t.engine")
    with pytest.raises(EngineBuildError, match=r"DLA needs static shapes.*--static-shapes opt"):
        build_engine(tiny, out, options("jetson-orin", dla_core=0))
    assert not out.exists()
    result = build_engine(tiny, out, options("jetson-orin", dla_core=1, static_shapes="opt"))
    assert result.gpu_fallback == ["cast (ELEMENTWISE)"]
    assert fake_trt.fake.builder.builds[-1]["device"] == "DLA"
    assert "GPU_FALLBACK" in calls(fake_trt, "set_flag")
    assert read_manifest(out).producer.details["engine"]["dla_core"] == 1  # type: ignore[union-attr]
    with pytest.raises(EngineBuildError, match="has no DLA"):
        build_engine(tiny, out, options("gpu", dla_core=0, static_shapes="opt"))


@pytest.mark.parametrize(
    ("version", "target", "allowed"),
    [
        ("10.3.0", "jetson-orin", True),
        ("10.7.0", "jetson-orin", True),
        ("10.8.0", "jetson-orin", False),  # the last 10.x with DLA on JetPack is 10.7
        ("11.4.1", "jetson-orin", True),  # AGX Orin with JetPack 7.2.2
    ],
)
def test_dla_is_gated_by_the_tensorrt_release(version: str, target: str, allowed: bool) -> None:
    chosen = options(target, dla_core=0)
    if allowed:
        check_against_target(chosen, int(version.split(".")[0]), version)
    else:
        with pytest.raises(EngineBuildError, match=rf"TensorRT {version} has no DLA support"):
            check_against_target(chosen, int(version.split(".")[0]), version)


@pytest.mark.parametrize("version", ["11.0.0", "11.4.0", "11.4.0.106"])
def test_tensorrt_11_before_11_4_1_has_no_jetson(version: str) -> None:
    with pytest.raises(EngineBuildError, match=r"does not support Jetson.*11\.4\.1"):
        check_against_target(options("jetson-orin-nano"), 11, version)
    check_against_target(options("gpu"), 11, version)


def test_a_jetson_target_is_refused_on_a_server(fake_trt: ModuleType, tiny: Path) -> None:
    """The fake machine is x86_64 with an H100: an engine built here could not run on an Orin."""
    out = tiny.with_name("t.engine")
    version = fake_trt.__version__
    expected = "is a Jetson, this machine is linux-x86_64" if version.startswith("10.") else "support Jetson"
    with pytest.raises(EngineBuildError, match=expected):
        build_engine(tiny, out, options("jetson-orin"))
    assert not out.exists()


def test_the_build_machine_must_match_the_target() -> None:
    with pytest.raises(EngineBuildError, match=r"target gpu is a server GPU, this machine is a Jetson"):
        check_build_machine(get_target("gpu"), "linux-aarch64-jetson", "Orin (nvgpu)", "8.7")
    with pytest.raises(EngineBuildError, match=r"jetson-thor has compute capability 11.0.*Orin.*8.7"):
        check_build_machine(get_target("jetson-thor"), "linux-aarch64-jetson", "Orin (nvgpu)", "8.7")
    check_build_machine(get_target("jetson-orin"), "linux-aarch64-jetson", "Orin (nvgpu)", "8.7")
    check_build_machine(get_target("gpu"), "linux-sbsa", "GH200", "9.0")
    check_build_machine(get_target("jetson-thor"), "linux-aarch64-jetson", "Thor", "10.1")  # pre-CUDA 13


def test_a_profile_tensorrt_refuses_is_a_build_error(fake_trt: ModuleType) -> None:
    """The bindings raise from IOptimizationProfile.set_shape; they never return False."""
    builder = fake_trt.Builder(fake_trt.Logger())
    network = builder.create_network(0)
    network._inputs.append(fake_trt.ITensor("x", (-1, 3), "float32"))
    bad = Profile({}, {"x": ((4, 3), (2, 3), (8, 3))})  # opt below min
    with pytest.raises(
        EngineBuildError, match=r"refused profile 0 for input 'x': min \[4, 3\], opt \[2, 3\]"
    ):
        add_profiles(fake_trt, builder, builder.create_builder_config(), network, [bad])


def test_a_shape_tensor_input_is_refused_by_name(fake_trt: ModuleType, tmp_path: Path) -> None:
    nodes = [helper.make_node("Reshape", ["x", "target_shape"], ["y"], name="reshape")]
    graph = helper.make_graph(
        nodes,
        "reshape",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6]),
            helper.make_tensor_value_info("target_shape", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])],
    )
    path = tmp_path / "reshape.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    builder = fake_trt.Builder(fake_trt.Logger())
    network = builder.create_network(0)
    fake_trt.OnnxParser(network, fake_trt.Logger()).parse_from_file(str(path))
    with pytest.raises(EngineBuildError, match=r"input\(s\) 'target_shape' are shape tensors"):
        network_inputs(network)


def test_a_cache_with_short_hex_scales_is_read(tmp_path: Path) -> None:
    """TAO writes hex(bits)[2:], dropping leading zeros: 7 or fewer digits are left-padded."""
    path = tmp_path / "tao.calib"
    path.write_text("TRT-100300-EntropyCalibration2\nx: 3c010a14\ny: 1a2b3c4\n")
    cache = load_cache(path, "10.3.0")
    assert cache.tensors == 2 and b"y: 01a2b3c4" in cache.data


def test_parser_error_names_node_and_op(fake_trt: ModuleType, tiny: Path) -> None:
    """Fake only: the parser fails where the fake is told to."""
    fake_trt.fake.builder.fail_parse_on = "mean_tokens"
    out = tiny.with_name("t.engine")
    with pytest.raises(EngineBuildError, match=r"node 2 'mean_tokens' \(ReduceMean\).*UNSUPPORTED_NODE"):
        build_engine(tiny, out, options())
    assert not out.exists() and not Path(f"{out}.json").exists()


def test_failed_build_leaves_no_engine_manifest_or_timing_cache(fake_trt: ModuleType, tiny: Path) -> None:
    """Fake only: the build fails because the fake is told to."""
    fake_trt.fake.builder.fail_build = True
    out = tiny.with_name("t.engine")
    cache_file = tiny.with_name("trt.cache")
    with pytest.raises(EngineBuildError, match=r"failed to build.*out of memory"):
        build_engine(tiny, out, options(timing_cache=cache_file))
    assert sorted(p.name for p in tiny.parent.iterdir()) == ["tiny.onnx", "tiny.onnx.json"]


def test_options_tensorrt_lacks_are_refused(any_trt: ModuleType, tiny: Path) -> None:
    out = tiny.with_name("t.engine")
    if not hasattr(any_trt.HardwareCompatibilityLevel, "SAME_COMPUTE_CAPABILITY"):  # 10.3 lacks it
        with pytest.raises(EngineBuildError, match=r"has no HardwareCompatibilityLevel\.SAME_COMPUTE"):
            build_engine(tiny, out, options(hardware_compat="same-cc"))
    build_engine(tiny, out, options(hardware_compat="ampere+", version_compatible=True))
    engine = read_manifest(out).producer.details["engine"]  # type: ignore[union-attr]
    assert engine["hardware_compat"] == "ampere+" and engine["version_compatible"] is True
    assert "VERSION_COMPATIBLE" in engine["builder_flags"]


def test_precision_flags_on_a_reduced_precision_onnx_are_refused(any_trt: ModuleType, tmp_path: Path) -> None:
    path = tiny_artifact(tmp_path, precision="int8")
    match = "already" if generation(any_trt) == 10 else "TensorRT 11"
    with pytest.raises(EngineBuildError, match=match):
        build_engine(path, tmp_path / "t.engine", options(precision="fp16"))
    build_engine(path, tmp_path / "t.engine", options())  # Q/DQ: precision from the ONNX
    assert read_manifest(tmp_path / "t.engine").precision == "int8"  # type: ignore[union-attr]
    assert json.loads((tmp_path / "t.engine.json").read_text())["producer"]["engine"]["builder_flags"] == []


def test_build_needs_the_gpu_identity(
    fake_trt: ModuleType, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without cuda-python or a CUDA torch the manifest could not name the GPU: stop before building."""
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    out = tiny.with_name("t.engine")
    with pytest.raises(MissingDependencyError, match=r"cuda-python.*mmexport\[gpu\]"):
        build_engine(tiny, out, options())
    assert calls(fake_trt, "build_serialized_network") == [] and not out.exists()


def test_build_takes_the_gpu_identity_from_torch_without_cuda_python(
    fake_trt: ModuleType, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cuda = SimpleNamespace(
        is_available=lambda: True,
        get_device_capability=lambda _i: (8, 7),
        get_device_name=lambda _i: "Orin (nvgpu)",
    )
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    result = build_engine(tiny, tiny.with_name("t.engine"), options())
    assert (result.info.gpu_name, result.info.compute_capability) == ("Orin (nvgpu)", "8.7")


def test_an_unreadable_timing_cache_is_replaced(any_trt: ModuleType, tiny: Path) -> None:
    cache_file = tiny.with_name("trt.cache")
    cache_file.write_bytes(b"\x00 not a timing cache")
    result = build_engine(tiny, tiny.with_name("t.engine"), options(timing_cache=cache_file))
    assert "timing cache trt.cache unreadable; starting a new one" in result.notes
    assert cache_file.read_bytes() != b"\x00 not a timing cache" and cache_file.stat().st_size > 0


def test_a_timing_cache_from_another_gpu_is_replaced(fake_trt: ModuleType, tiny: Path) -> None:
    """Fake only: set_timing_cache refuses the cache because the fake is told to."""
    cache_file = tiny.with_name("trt.cache")
    build_engine(tiny, tiny.with_name("a.engine"), options(timing_cache=cache_file))
    fake_trt.fake.builder.timing_cache_mismatch = True
    result = build_engine(tiny, tiny.with_name("b.engine"), options(timing_cache=cache_file))
    assert any("trt.cache was recorded on another GPU" in n for n in result.notes)
    assert calls(fake_trt, "create_timing_cache")[-1] == b""  # a new one in its place
    assert cache_file.read_bytes().count(b"tactics") == 1


def test_tensorrt_without_a_usable_gpu_is_one_error(fake_trt: ModuleType, tiny: Path) -> None:
    """Fake only: TensorRT's builder fails to start because the fake is told to."""
    fake_trt.fake.no_gpu = True
    out = tiny.with_name("t.engine")
    with pytest.raises(EngineBuildError, match=r"builder could not start: no usable GPU") as caught:
        build_engine(tiny, out, options())
    assert "\n" not in str(caught.value) and "CUDA initialization failure" in str(caught.value)
    assert not out.exists()


def test_pipeline_reports_a_builder_that_cannot_start(
    fake_trt: ModuleType, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's engine stage catches MmexportError: no GPU is a reason, not a crash."""
    import importlib.util

    from mmexport.pipeline import build_engines

    fake_trt.fake.no_gpu = True
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    status = build_engines([tiny], "gpu")
    assert status["built"] is False and status["engines"] == []
    assert "builder could not start" in status["reason"]


def test_missing_tensorrt_on_a_jetson_target_points_to_jetpack(
    tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(MissingDependencyError) as caught:
        build_engine(tiny, tiny.with_name("t.engine"), options("jetson-orin"))
    text = str(caught.value)
    assert "--system-site-packages" in text and "apt" in text and "mmexport[trt]" not in text
    with pytest.raises(MissingDependencyError, match=r"mmexport\[trt\]"):
        build_engine(tiny, tiny.with_name("t.engine"), options("gpu"))


@pytest.mark.trt
def test_real_tensorrt_builds_the_tiny_model(real_trt: ModuleType, tiny: Path) -> None:
    out = tiny.with_name("tiny.engine")
    result = build_engine(tiny, out, options(timing_cache=tiny.with_name("trt.cache")))
    assert out.stat().st_size > 0 and result.info.tensorrt_version == real_trt.__version__
    assert result.info.compute_capability != "unknown"
    runtime = real_trt.Runtime(real_trt.Logger(real_trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(out.read_bytes())
    assert engine is not None and engine.num_io_tensors == 3
