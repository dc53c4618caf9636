"""Writing commands killed (SIGKILL) or interrupted (SIGINT, Ctrl-C) in a child process: what is on
disk afterwards is the previous good artifact, the new one complete, or nothing that passes for
valid; a rerun succeeds and leaves no temporary files. See ``kills.py`` for the fault points."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from mmexport.core.files import sha256_file
from mmexport.core.manifest import Manifest
from mmexport.core.spec import ModelSpec
from reliability import budget
from reliability.kills import POINTS, TINY_FILE, Command, interrupt, leftovers, make_shim, run, state
from trt.test_build import SPEC, tiny_artifact

pytestmark = pytest.mark.slow  # kill tests: each runs and kills child processes

COMMANDS = ["to-onnx", "fp16", "calibrate", "build", "bundle"]


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shim(tmp_path_factory.mktemp("shim"))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The FP32 ONNX (with manifest) that fp16, calibrate, build and bundle read."""
    return tiny_artifact(tmp_path_factory.mktemp("source"))


def command(name: str, source: Path, folder: Path) -> Command:
    src = str(source)
    if name == "to-onnx":
        return Command(
            name,
            ["to-onnx", f"{TINY_FILE}:tiny", "-o", "{out}", "-q", "--random-points", "0"],
            folder / "m.onnx",
        )
    if name == "fp16":
        return Command(
            name,
            ["fp16", src, "-o", "{out}", "--eval-samples", "0", "--samples", "8", "-q"],
            folder / "m.fp16.onnx",
        )
    if name == "calibrate":
        args = ["calibrate", src, "-o", "{out}", "--eval-samples", "0", "--samples", "16", "-q"]
        return Command(name, args, folder / "m.int8.onnx", companions=("m.int8.calib",))
    if name == "build":
        return Command(
            name, ["build", src, "-o", "{out}", "--workspace", "1G", "-q"], folder / "m.gpu.engine"
        )
    args = ["bundle", src, "--target", "gpu-trt10", "-o", "{out}", "--overwrite", "-q"]
    return Command(name, args, folder / "m.tar.gz", manifest=False)


def points(name: str) -> list[str]:
    if name == "bundle":
        return ["bundle-before-publish"]
    return list(POINTS) if budget.FULL else ["in-staging"]


def place_previous(cmd: Command) -> str:
    """A good artifact at the output before an interrupted run: bytes no run makes, with their
    manifest, so that "previous kept" and "new complete" are told apart. Returns its sha256."""
    cmd.output.write_bytes(b"a previous artifact")
    for name in cmd.companions:
        (cmd.output.parent / name).write_text("a previous calibration cache")
    if cmd.manifest:
        spec = ModelSpec.from_dict(SPEC)
        Manifest("onnx", cmd.output.name, sha256_file(cmd.output), spec, "fp32").write(cmd.output)
    return sha256_file(cmd.output)


@pytest.mark.parametrize("name", COMMANDS)
def test_sigkill_leaves_previous_or_nothing_valid_and_a_rerun_succeeds(
    name: str, shim: Path, source: Path, tmp_path: Path
) -> None:
    cmd = command(name, source, tmp_path)
    plan: list[tuple[str, str | None, float]] = [(p, p, 0.0) for p in points(name)]
    if budget.KILL_DELAYS:  # random delays within the time a whole run takes
        done, seconds = run(cmd, shim)
        assert done.returncode == 0, done.stderr
        rng = random.Random(name)
        delays = sorted(rng.uniform(0.05, seconds) for _ in range(budget.KILL_DELAYS))
        plan += [(f"random {d:.2f}s", None, d) for d in delays]
    for label, point, delay in plan:
        previous = place_previous(cmd)
        _, _, landed = interrupt(cmd, shim, signal.SIGKILL, point=point, delay=delay)
        outcome = state(cmd, previous)  # raises if a corrupt artifact passes for valid
        where = "random delay" if point is None else label
        budget.record(
            f"SIGKILL/{name}", f"{where}: {outcome}" + ("" if landed else " (ended before the kill)")
        )
        rerun, _ = run(cmd, shim)
        assert rerun.returncode == 0, rerun.stderr
        assert state(cmd, None) == "new artifacts complete"
        left = leftovers(tmp_path)
        assert left == [], f"{name} rerun after a kill {label} left {left}"


@pytest.mark.parametrize("name", COMMANDS)
def test_ctrl_c_exits_130_and_writes_nothing(name: str, shim: Path, source: Path, tmp_path: Path) -> None:
    """Ctrl-C while the artifact is made or staged: exit 130, nothing at the output. During the
    final moves (before-manifest) Ctrl-C is held back until the manifest is written: the new
    artifact is complete, then the command exits 130."""
    cmd = command(name, source, tmp_path)
    for point in points(name):
        rc, stderr, _ = interrupt(cmd, shim, signal.SIGINT, point=point, seconds=2)
        assert rc == 130, stderr
        assert "interrupted" in stderr and "Traceback" not in stderr, stderr
        outcome = state(cmd, None)
        assert outcome == ("new artifacts complete" if point == "before-manifest" else "nothing"), point
        assert leftovers(tmp_path) == [], point
        budget.record(f"SIGINT/{name}", f"{point}: exit {rc}, {outcome}")
        for path in tmp_path.iterdir():
            path.unlink()
