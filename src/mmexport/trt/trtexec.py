"""The ``trtexec`` command line that measures the same artifact at the same shapes, for a cross-check.

trtexec's defaults differ between generations: TensorRT 10 copies inputs and outputs, launches
without a CUDA graph and waits blocking; TensorRT 11 leaves transfers out, replays a CUDA graph
and spin-waits. The lines here always ask for one behaviour (11's by default, the fastest and
the one trtexec 11 reports), spelling out on each generation the flags that get it, so that
figures from a Jetson on 10.3 and a server on 11.x compare. Their GPU compute time is what
``bench`` reports as ``compute`` (CUDA events around ``execute_async_v3``).
ONNX lines on TensorRT 10 add ``--stronglyTyped`` (trtexec's README, "Create a strongly typed
plan file"): the network ``mmexport build`` makes, precision from the ONNX.
*Unverified*: ``--noSpinWait`` on trtexec 11 (the TensorRT-RTX tool has it); ``--noCudaGraph``
and ``--includeDataTransfers`` are what TensorRT 11 users pass.
An engine built for a DLA core runs there only when trtexec is told so (``--useDLACore=N``: the
engine takes the core its runtime has selected, 0 by default); an ONNX line for DLA adds
``--allowGPUFallback``, as ``mmexport build --dla-core`` does.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mmexport.core.spec import ModelSpec

ENGINE_SUFFIXES = (".engine", ".plan")


@dataclass(frozen=True)
class Behaviour:
    """What the measured loop does; default: TensorRT 11 trtexec's defaults."""

    cuda_graph: bool = True
    spin_wait: bool = True
    data_transfers: bool = False


# (flag that turns it on, flag that turns it off) per generation; None: the generation's default.
_FLAGS: dict[int, dict[str, tuple[str | None, str | None]]] = {
    10: {
        "cuda_graph": ("--useCudaGraph", None),
        "spin_wait": ("--useSpinWait", None),
        "data_transfers": (None, "--noDataTransfers"),
    },
    11: {
        "cuda_graph": (None, "--noCudaGraph"),
        "spin_wait": (None, "--noSpinWait"),
        "data_transfers": ("--includeDataTransfers", None),
    },
}


def behaviour_flags(generation: int, behaviour: Behaviour = Behaviour()) -> list[str]:
    """The flags that make trtexec of ``generation`` (10 or 11) run as ``behaviour`` says."""
    flags = []
    for name, (on, off) in _FLAGS[11 if generation >= 11 else 10].items():
        flag = on if getattr(behaviour, name) else off
        if flag is not None:
            flags.append(flag)
    return flags


def _x(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def _shapes(shapes: Mapping[str, Sequence[int]]) -> str:
    return ",".join(f"{name}:{_x(shape)}" for name, shape in shapes.items())


def trtexec_command(
    artifact: str | Path,
    spec: ModelSpec,
    shapes: Mapping[str, Sequence[int]],
    generation: int,
    *,
    warmup_s: float = 0.2,
    duration_s: float = 3.0,
    iterations: int = 10,
    behaviour: Behaviour = Behaviour(),
    dla_core: int | None = None,
) -> str:
    """``trtexec --loadEngine=...`` for an engine, ``--onnx=...`` with the spec's profile otherwise;
    ``dla_core``: the DLA core the engine was built for (the manifest's ``dla_core``)."""
    path = Path(artifact)
    args = ["trtexec"]
    if path.suffix.lower() in ENGINE_SUFFIXES:
        args.append(f"--loadEngine={path}")
    else:
        args.append(f"--onnx={path}")
        if generation < 11:  # 11 is always strongly typed; 10 would build FP16 / Q/DQ ONNX weakly typed
            args.append("--stronglyTyped")
        for corner in ("min", "opt", "max"):
            args.append(f"--{corner}Shapes={_shapes(spec.shapes(spec.point(corner)))}")
        if dla_core is not None:
            args.append("--allowGPUFallback")
    if dla_core is not None:
        args.append(f"--useDLACore={int(dla_core)}")
    args.append(f"--shapes={_shapes(shapes)}")
    args += [f"--warmUp={round(warmup_s * 1000)}", f"--duration={math.ceil(duration_s)}"]
    args.append(f"--iterations={iterations}")
    args += behaviour_flags(generation, behaviour)
    return " ".join(shlex.quote(a) for a in args)


def generations_for(backend: Mapping[str, object], installed: str | None) -> list[int]:
    """Which trtexec to write for: the engine's TensorRT, else the installed one, else both."""
    for version in (backend.get("tensorrt_version"), installed):
        if isinstance(version, str) and version.split(".")[0].isdigit():
            return [int(version.split(".")[0])]
    return [10, 11]
