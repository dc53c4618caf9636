"""``mmexport doctor`` on fake machines: a bare CPU box, an x86 GPU server, a Jetson Orin."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from click.testing import CliRunner

from mmexport.bench.doctor import diagnose, format_diagnosis, probe
from mmexport.cli.app import cli


def importer(modules):
    def import_module(name):
        if name not in modules:
            raise ImportError(name)
        return modules[name]

    return import_module


def commands(outputs):
    """A fake runner: the output of the longest key the command line starts with (None: absent)."""

    def run(command):
        line = " ".join(command)
        keys = [k for k in outputs if line == k or line.startswith(k + " ")]
        return outputs[max(keys, key=len)] if keys else None

    return run


ORT_CPU = SimpleNamespace(__version__="1.32.0", get_available_providers=lambda: ["CPUExecutionProvider"])
ORT_GPU = SimpleNamespace(
    __version__="1.24.0", get_available_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
)
TRT = SimpleNamespace(__version__="10.3.0")
CUDART = SimpleNamespace(cudaRuntimeGetVersion=lambda: (0, 12060), cudaDriverGetVersion=lambda: (0, 12080))
SMI = "NVIDIA H200, 570.86.15, 1980, 1980, 2619, 2619\n"


def test_bare_cpu_machine_names_every_extra(tmp_path):
    d = diagnose(root=tmp_path, run=commands({}), import_module=importer({"onnxruntime": ORT_CPU}))
    facts = d.to_dict()
    assert facts["tensorrt"] == {"installed": False}
    assert facts["gpus"] == [] and facts["jetson"] is None and facts["suggested_target"] is None
    assert facts["dla"]["cores"] is None and "only TensorRT" in facts["dla"]["note"]
    installs = {c["install"] for c in d.cannot}
    assert "pip install 'mmexport[trt]'" in installs and "pip install torch" in installs
    text = format_diagnosis(d)
    assert "not installed" in text and "cannot:" in text


def test_gpu_server_with_cuda_python(tmp_path):
    run = commands({"nvidia-smi": SMI, "nvidia-smi --query-gpu=compute_cap": "9.0\n"})
    modules = {"onnxruntime": ORT_GPU, "tensorrt": TRT, "cuda.bindings.runtime": CUDART}
    d = diagnose(root=tmp_path, run=run, import_module=importer(modules))
    f = d.facts
    assert f["cuda"] == {"runtime": "12.6", "driver": "12.8", "via": "cuda-python"}
    assert f["gpus"][0]["name"] == "NVIDIA H200" and f["gpus"][0]["compute_capability"] == "9.0"
    assert f["tensorrt"] == {"installed": True, "version": "10.3.0", "generation": 10}
    assert f["dla"]["cores"] is None  # the fake has no Builder: the probe fails quietly
    assert f["suggested_target"] == "gpu"
    assert any("TensorRT 10.3.0" in c for c in d.can)
    assert not any("mmexport[gpu]" in c["install"] for c in d.cannot)


def test_jetson_orin_with_l4t_and_power_mode(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_text("NVIDIA Jetson AGX Orin Developer Kit\x00")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0, GCID: 1\n")
    run = commands({"nvpmodel": "NV Power Mode: MAXN\n0\n", "nvidia-smi": "| CUDA Version: 12.6 |\n"})
    d = diagnose(root=tmp_path, run=run, import_module=importer({"onnxruntime": ORT_CPU}))
    j = d.facts["jetson"]
    assert (j["l4t"], j["jetpack"], j["power_mode"]) == ("36.4.0", "6.x", "MAXN")
    assert d.facts["cuda"]["driver"] == "12.6" and d.facts["cuda"]["via"] == "nvidia-smi"
    assert d.facts["suggested_target"] == "jetson-orin"
    trt = next(c for c in d.cannot if "TensorRT" in c["what"])
    assert "system-site-packages" in trt["install"] and "apt" in trt["install"]
    assert "pip install 'mmexport[trt]'" not in trt["install"]  # pip cannot install it on JetPack
    assert any("mmexport[gpu]" in c["install"] for c in d.cannot)
    buffers = next(c for c in d.cannot if "buffers" in c["what"])
    assert "cuda-python==12.6.*" in buffers["install"]  # JetPack 6: CUDA 12.6, not cuda-python 12.9 or 13


def test_probe_never_raises_and_is_bounded():
    assert probe(lambda: 1 / 0) is None
    t0 = time.perf_counter()
    assert probe(lambda: time.sleep(2), timeout_s=0.1) is None
    assert time.perf_counter() - t0 < 1.5


def test_cli_doctor_json_on_this_machine():
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"tensorrt", "cuda", "gpus", "dla", "onnxruntime", "torch", "jetson", "can", "cannot"} <= set(data)
    text = CliRunner().invoke(cli, ["doctor"])
    assert text.exit_code == 0 and "tensorrt" in text.output
