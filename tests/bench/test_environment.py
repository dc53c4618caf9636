"""Environment probes on a fake machine: GPU via nvidia-smi, Jetson model, power mode and clocks."""

from __future__ import annotations

from mmexport.bench.environment import clocks_locked, collect_environment


def _jetson_root(tmp_path, locked: bool):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_text("NVIDIA Jetson AGX Orin Developer Kit\x00")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nmodel name\t: ARMv8 Processor rev 1 (v8l)\n")
    for cpu in ("cpu0", "cpu1"):
        freq = tmp_path / f"sys/devices/system/cpu/{cpu}/cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_min_freq").write_text("2201600\n" if locked else "115200\n")
        (freq / "scaling_max_freq").write_text("2201600\n")
    gpu = tmp_path / "sys/class/devfreq/17000000.ga10b"
    gpu.mkdir(parents=True)
    (gpu / "min_freq").write_text("1300500000\n")
    (gpu / "max_freq").write_text("1300500000\n")
    return tmp_path


def _fake_commands(outputs):
    def run(command):
        return outputs.get(command[0])

    return run


def test_jetson_with_unlocked_clocks_warns(tmp_path):
    root = _jetson_root(tmp_path, locked=False)
    env = collect_environment(root=root, run=_fake_commands({"nvpmodel": "NV Power Mode: MAXN\n0\n"}))
    assert env["jetson"] == {
        "model": "NVIDIA Jetson AGX Orin Developer Kit",
        "l4t": "# R36 (release), REVISION: 4.0",
        "power_mode": "MAXN",
        "clocks_locked": False,
    }
    assert env["host"]["cpu"] == "ARMv8 Processor rev 1 (v8l)"
    assert any("jetson_clocks" in w for w in env["warnings"])


def test_jetson_with_locked_clocks(tmp_path):
    root = _jetson_root(tmp_path, locked=True)
    env = collect_environment(root=root, run=_fake_commands({}))
    assert env["jetson"]["clocks_locked"] is True and env["jetson"]["power_mode"] is None
    assert env["warnings"] == []


def test_gpu_from_nvidia_smi(tmp_path):
    smi = "NVIDIA H100 80GB HBM3, 550.54.15, 1980, 1980, 2619, 2619\n"
    env = collect_environment(root=tmp_path, run=_fake_commands({"nvidia-smi": smi}))
    assert env["gpus"] == [
        {
            "name": "NVIDIA H100 80GB HBM3",
            "driver_version": "550.54.15",
            "clocks.sm": "1980",
            "clocks.max.sm": "1980",
            "clocks.mem": "2619",
            "clocks.max.mem": "2619",
        }
    ]
    assert env["jetson"] is None


def test_nothing_present_is_not_an_error(tmp_path):
    env = collect_environment(root=tmp_path, run=_fake_commands({}))
    assert env["gpus"] == [] and env["jetson"] is None and env["warnings"] == []
    assert clocks_locked(tmp_path) is None
    assert env["host"]["cpu"]  # falls back to platform
