"""``accuracy(..., device="cuda")`` / ``mmexport accuracy --device cuda``: every variant through the
runtime's Session on the GPU (onnxruntime's CUDA provider, played by ``fake_cuda_ort`` over the
CPU onnxruntime), the reference there too unless ``reference_device="cpu"``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnxruntime as real_ort
import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli
from mmexport.core.errors import BackendError, ConfigError
from mmexport.precision.accuracy import OnDevice, _runner
from mmexport.precision.stages import CalibrationConfig, accuracy, calibrate
from precision.precision_data import tiny_feeds
from precision.test_stages import write_npz
from runtime.fake_cuda_ort import FakeOrt, install

FAST = CalibrationConfig(samples=8, batch_size=2, sensitivity=False)


class GpuOrt(FakeOrt):
    """onnxruntime-gpu: a session asked for the CPU provider alone is a plain CPU session."""

    def InferenceSession(self, path: str, options: Any = None, providers: Any = None, **kwargs: Any) -> Any:
        if list(providers or []) == ["CPUExecutionProvider"]:
            return real_ort.InferenceSession(path, options, providers=providers, **kwargs)
        return super().InferenceSession(path, options, providers, **kwargs)


@pytest.fixture(scope="module")
def variants(tiny_fp32_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("device")
    int8 = calibrate(tiny_fp32_onnx, folder / "t.int8.onnx", data=tiny_feeds(2), config=FAST, eval_samples=0)
    return tiny_fp32_onnx, int8.path, write_npz(folder / "eval", tiny_feeds(2, seed=3))


def _cuda_options(session: Any) -> dict[str, Any]:
    return dict(
        next(p[1] for p in session.providers if isinstance(p, tuple) and p[0] == "CUDAExecutionProvider")
    )


def test_every_variant_runs_on_the_cuda_device_asked_for(
    variants: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fp32, int8, data = variants
    on_cpu = accuracy([fp32, int8], data=data)
    fake = install(monkeypatch, GpuOrt())
    report = accuracy([fp32, int8], data=data, device="cuda:1")
    assert [Path(s.real._model_path).name for s in fake.sessions] == ["tiny.onnx", "t.int8.onnx"]
    assert [_cuda_options(s)["device_id"] for s in fake.sessions] == [1, 1]
    assert report.samples == on_cpu.samples == 4
    assert [v.precision for v in report.variants] == ["fp32", "int8"]
    # the same arithmetic underneath (the fake runs on the CPU), optimized as deployed
    assert report.variants[1].worst_cosine() == pytest.approx(on_cpu.variants[1].worst_cosine(), abs=1e-3)


def test_the_reference_can_stay_on_the_cpu(
    variants: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fp32, int8, data = variants
    fake = install(monkeypatch, GpuOrt())
    report = accuracy([fp32, int8], data=data, device="cuda", reference_device="cpu")
    assert [Path(s.real._model_path).name for s in fake.sessions] == ["t.int8.onnx"]
    assert report.reference.name == "tiny.onnx" and report.variants[1].outputs


def test_without_the_cuda_provider_one_error_before_any_work(variants: tuple[Path, Path, Path]) -> None:
    fp32, int8, data = variants
    with pytest.raises(BackendError, match="CUDAExecutionProvider is not in this onnxruntime build") as info:
        accuracy([fp32, int8], data=data / "missing", device="cuda")  # refused before the data is read
    assert "\n" not in str(info.value)
    # the reference alone on the GPU needs the provider too; on the CPU it does not
    with pytest.raises(BackendError):
        accuracy([fp32, int8], data=data, reference_device="cuda")


def test_cli_device_error_is_one_line(variants: tuple[Path, Path, Path]) -> None:
    fp32, int8, data = variants
    result = CliRunner().invoke(
        cli, ["accuracy", str(fp32), str(int8), "--data", str(data), "--device", "cuda", "-q"]
    )
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and "CUDAExecutionProvider" in lines[0], result.output
    assert not any(line.startswith("Traceback") for line in lines)


def test_cli_device_reaches_the_runtime(
    variants: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fp32, int8, data = variants
    fake = install(monkeypatch, GpuOrt())
    args = ["accuracy", str(fp32), str(int8), "--data", str(data), "--device", "cuda:2"]
    result = CliRunner().invoke(cli, [*args, "--reference-device", "cpu", "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["samples"] == 4
    assert [_cuda_options(s)["device_id"] for s in fake.sessions] == [2]


@pytest.mark.parametrize(("device", "option"), [("gpu", "device"), ("cuda:x", "device"), ("cpu:0", "device")])
def test_bad_device_names_the_option(variants: tuple[Path, Path, Path], device: str, option: str) -> None:
    fp32, int8, data = variants
    with pytest.raises(ConfigError, match=f"{option} must be cpu, cuda or cuda:N, got '{device}'"):
        accuracy([fp32, int8], data=data, device=device)
    with pytest.raises(ConfigError, match="reference_device must be"):
        accuracy([fp32, int8], data=data, reference_device=device)


def test_an_engine_opens_on_the_gpu_asked_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Engines went to "cuda" (device 0) whatever the device; now to the one asked for."""
    import mmexport.runtime

    opened: list[tuple[Path, str]] = []
    monkeypatch.setattr(mmexport.runtime, "Session", lambda path, device: opened.append((Path(path), device)))
    from contextlib import ExitStack

    with ExitStack() as stack:
        _runner(OnDevice(tmp_path / "m.engine", "cuda:3"), "fp16", ["y"], stack)
        _runner(tmp_path / "m.engine", "fp16", ["y"], stack)
    assert opened == [(tmp_path / "m.engine", "cuda:3"), (tmp_path / "m.engine", "cuda")]
