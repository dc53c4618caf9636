"""Run a writing command in a child process and stop it at a chosen point (SIGKILL or SIGINT),
then say what it left on disk.

The child is the real command line (``python -m mmexport.cli ...``) with ``PYTHONPATH`` set to a
shim folder made here: ``tensorrt`` and ``cuda.bindings.runtime`` there are the fakes of
``tests/trt/fakes`` (so ``mmexport build`` runs without a GPU), and its ``sitecustomize`` can
pause the child at a fault point (``MMEXPORT_FAULT_PAUSE``), after touching a marker file, so
that the signal lands exactly there:

- ``in-staging``: the staging folder exists (the artifact is being made);
- ``before-publish``: the artifact is staged, nothing moved yet;
- ``before-manifest``: the artifact is in place, its manifest not yet written (Ctrl-C is held
  back there, so a SIGINT lands once the manifest is written);
- ``bundle-before-publish``: ``mmexport bundle``'s archive is complete in its temporary file
  (inside ``ArchiveWriter.__exit__``, just before it is renamed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from mmexport.core.errors import MmexportError
from mmexport.core.files import sha256_file
from mmexport.core.manifest import read_manifest

TESTS = Path(__file__).resolve().parents[1]
POINTS = ("in-staging", "before-publish", "before-manifest")
TINY_FILE = TESTS / "tiny_models.py"

SITECUSTOMIZE = '''"""Fault points for child processes of the reliability suite (see kills.py)."""
import os
import time
from contextlib import contextmanager

_POINT = os.environ.get("MMEXPORT_FAULT_PAUSE")


def _pause():
    with open(os.environ["MMEXPORT_FAULT_MARK"], "w"):
        pass
    time.sleep(float(os.environ.get("MMEXPORT_FAULT_SECONDS", "60")))


if _POINT in ("in-staging", "before-publish", "before-manifest"):
    import mmexport.core.files
    import mmexport.core.manifest

    if _POINT == "in-staging":
        _staging_dir = mmexport.core.files.staging_dir

        @contextmanager
        def staging_dir(final_path):
            with _staging_dir(final_path) as folder:
                _pause()
                yield folder

        mmexport.core.files.staging_dir = staging_dir
    elif _POINT == "before-publish":
        _publish_artifact = mmexport.core.manifest.publish_artifact

        def publish_artifact(*args, **kwargs):
            _pause()
            return _publish_artifact(*args, **kwargs)

        mmexport.core.manifest.publish_artifact = publish_artifact
    else:  # the manifest is staged; the artifact is in place, its manifest about to be moved
        _place_manifest = mmexport.core.manifest.place_manifest

        def place_manifest(*args, **kwargs):
            _pause()
            return _place_manifest(*args, **kwargs)

        mmexport.core.manifest.place_manifest = place_manifest
elif _POINT == "bundle-before-publish":  # inside ArchiveWriter.__exit__, just before os.replace
    import types

    import mmexport.deploy.archive as _archive

    def _chmod(*args, **kwargs):
        _pause()
        return os.chmod(*args, **kwargs)

    _archive.os = types.SimpleNamespace(**{**vars(os), "chmod": _chmod})
'''

TENSORRT = '''"""The fake TensorRT of tests/trt/fakes, as ``import tensorrt``."""
import os
import sys

from trt.fakes import fake_tensorrt

sys.modules[__name__] = fake_tensorrt(os.environ.get("MMEXPORT_FAKE_TRT", "10.3.0"))
'''

CUDART = '''"""The fake cuda-python runtime of tests/trt/fakes, as ``import cuda.bindings.runtime``."""
import sys

from trt.fakes import cuda_runtime

sys.modules[__name__], _state = cuda_runtime.install()
'''


def make_shim(folder: Path) -> Path:
    """The PYTHONPATH folder for child processes: fakes and fault points."""
    (folder / "cuda" / "bindings").mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (folder / "tensorrt.py").write_text(TENSORRT)
    (folder / "cuda" / "__init__.py").write_text("")
    (folder / "cuda" / "bindings" / "__init__.py").write_text("")
    (folder / "cuda" / "bindings" / "runtime.py").write_text(CUDART)
    return folder


@dataclass
class Command:
    """A writing command: its arguments (``{out}`` is replaced by the output path) and output."""

    name: str
    args: list[str]
    output: Path
    companions: tuple[str, ...] = ()  # files written beside the output (calibration cache)
    manifest: bool = True  # False: the output is checked by its own content (bundle archives)

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mmexport.cli",
            *(a.replace("{out}", str(self.output)) for a in self.args),
        ]


def child_env(
    shim: Path, pause: str | None = None, mark: Path | None = None, seconds: float = 60
) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(shim), str(TESTS), env.get("PYTHONPATH", "")])
    env.pop("MMEXPORT_FAULT_PAUSE", None)
    if pause is not None and mark is not None:
        env.update(
            MMEXPORT_FAULT_PAUSE=pause, MMEXPORT_FAULT_MARK=str(mark), MMEXPORT_FAULT_SECONDS=str(seconds)
        )
    return env


def run(command: Command, shim: Path, timeout: float = 300) -> tuple[subprocess.CompletedProcess[str], float]:
    """The command to completion, and how long it took."""
    started = time.monotonic()
    done = subprocess.run(
        command.argv(), env=child_env(shim), capture_output=True, text=True, timeout=timeout
    )
    return done, time.monotonic() - started


def interrupt(
    command: Command,
    shim: Path,
    sig: signal.Signals,
    *,
    point: str | None = None,
    delay: float = 0.0,
    seconds: float = 60,
) -> tuple[int, str, bool]:
    """Start the command and send ``sig`` at ``point`` (a fault point) or after ``delay`` seconds.

    Returns the exit status, stderr, and whether the signal landed before the command finished."""
    mark = command.output.parent / f".fault-{os.getpid()}-{time.monotonic_ns()}"
    env = child_env(shim, point, mark, seconds)
    proc = subprocess.Popen(
        command.argv(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + (120 if point else delay)
        while time.monotonic() < deadline and proc.poll() is None:
            if point is not None and mark.exists():
                break
            time.sleep(0.005)
        landed = proc.poll() is None
        if landed:
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        mark.unlink(missing_ok=True)
    if point is not None and not landed:
        raise AssertionError(f"{command.name} ended before reaching {point}: {stderr[-2000:]}")
    return proc.returncode, stderr, landed


def state(command: Command, previous: str | None) -> str:
    """What is at the output now, in the words of the report; raises if it is inconsistent.

    ``previous``: the sha256 of the artifact that was there before the run (None: nothing)."""
    out = command.output
    if not command.manifest:
        return _archive_state(out, previous)
    try:
        manifest = read_manifest(out)
    except MmexportError as e:  # manifests are written atomically: never half of one
        raise AssertionError(f"{out}.json is unreadable after the interruption: {e}") from e
    if manifest is None:
        return "nothing valid (artifact without manifest)" if out.exists() else "nothing"
    if not out.is_file():
        raise AssertionError(f"{out}.json is there without its artifact")
    actual = sha256_file(out)
    if actual != manifest.sha256:
        raise AssertionError(
            f"{out} does not match its manifest's sha256: a corrupt artifact passes for valid"
        )
    for name in command.companions:
        if not (out.parent / name).is_file():
            raise AssertionError(f"{out} has its manifest but not {name}")
    return "previous artifacts kept" if actual == previous else "new artifacts complete"


def _archive_state(out: Path, previous: str | None) -> str:
    if not out.exists():
        return "nothing"
    digest = sha256_file(out)
    if digest == previous:
        return "previous artifacts kept"
    with tarfile.open(out, "r:gz") as tar:  # a complete archive, bundle.json included
        names = tar.getnames()
        member = tar.extractfile("bundle.json")
        assert member is not None, names
        json.loads(member.read())
    return "new artifacts complete"


def leftovers(folder: Path) -> list[str]:
    """Hidden files and folders that a run left in the output folder (staging, temporary files)."""
    return sorted(
        p.name for p in folder.iterdir() if p.name.startswith(".") and not p.name.startswith(".fault")
    )
