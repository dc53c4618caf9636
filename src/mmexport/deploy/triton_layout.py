"""The Triton model folder's files, and what an engine's optimization profiles decide.

``model_files``: ``1/model.onnx`` with its external data, or ``1/model.plan`` (one engine), or
``1/model_<cc>.plan`` per compute capability with ``cc_model_filenames`` (several); each
manifest beside ``config.pbtxt``. ``engine_dims``: the spec's dims narrowed to the profiles;
``engine_profiles``: the profile list an instance group needs to use them all.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

from mmexport.core.errors import ArtifactError
from mmexport.core.manifest import manifest_path
from mmexport.core.spec import DimSpec
from mmexport.deploy.triton_artifacts import DeployArtifact
from mmexport.deploy.triton_config import VERSION
from mmexport.runtime.backends.tensorrt.engine_info import UNKNOWN, EngineInfo


def engine_profiles(artifact: DeployArtifact) -> tuple[str, ...]:
    """Every profile of an engine with several: Triton's TensorRT backend uses profile 0 alone
    unless the instance group lists them, and the dims and max_batch_size span all of them."""
    count = len(artifact.engine.profiles) if artifact.engine is not None else 0
    return tuple(str(i) for i in range(count)) if count > 1 else ()


def engine_dims(engine: DeployArtifact, notes: list[str]) -> dict[str, DimSpec]:
    """The spec's dims narrowed to what the engine's profiles accept (their union; opt from profile 0)."""
    assert engine.engine is not None
    ranges: dict[str, list[tuple[int, int, int]]] = {}
    for profile in engine.engine.profiles:
        seen: dict[str, tuple[int, int, int]] = {}
        for inp in engine.spec.inputs:
            if inp.name in profile:
                lo, mid, hi = profile[inp.name]
                seen.update(
                    {d: (lo[a], mid[a], hi[a]) for a, d in enumerate(inp.shape) if isinstance(d, str)}
                )
        for name, r in seen.items():
            ranges.setdefault(name, []).append(r)
    dims = dict(engine.spec.dims)
    for name, found in ranges.items():
        dims[name] = DimSpec(name, min(r[0] for r in found), found[0][1], max(r[2] for r in found))
        spans = sorted((r[0], r[2]) for r in found)
        if any(later[0] > earlier[1] + 1 for earlier, later in itertools.pairwise(spans)):
            covered = ", ".join(f"{lo}..{hi}" for lo, hi in spans)
            notes.append(
                f"the engine's profiles accept dim {name!r} in {covered} only; other sizes will fail"
            )
    return dims


def model_files(
    artifacts: Sequence[DeployArtifact], notes: list[str]
) -> tuple[dict[str, Path], dict[str, str], dict[str, str]]:
    """(model folder path -> source file, -> recorded sha256, cc_model_filenames)."""
    files: dict[str, Path] = {}
    checksums: dict[str, str] = {}
    cc_files: dict[str, str] = {}
    for artifact in artifacts:
        info = artifact.engine
        if info is None:
            name = "model.onnx"
            for location in artifact.external_data:
                files[f"{VERSION}/{location}"] = artifact.path.parent / location
        elif len(artifacts) == 1:
            name = "model.plan"
            notes.append(_plan_note(info))
        else:
            if info.compute_capability == UNKNOWN:
                raise ArtifactError(
                    str(artifact.path),
                    "its manifest does not record the compute capability it was built for, which "
                    "cc_model_filenames needs to pick it",
                    hint="serve it alone (model.plan), or rebuild it with mmexport build",
                )
            name = f"model_{info.compute_capability}.plan"
            cc_files[info.compute_capability] = name
        files[f"{VERSION}/{name}"] = artifact.path
        if artifact.manifest is not None:
            files[f"{name}.json"] = manifest_path(artifact.path)  # beside config.pbtxt: Triton ignores it
            if artifact.manifest.sha256:
                checksums[f"{VERSION}/{name}"] = artifact.manifest.sha256
    return files, checksums, dict(sorted(cc_files.items()))


def _plan_note(info: EngineInfo) -> str:
    """Which GPUs the one ``model.plan`` runs on, as its manifest tells."""
    if info.hardware_compat == "ampere+":
        return (
            "model.plan runs on GPUs of compute capability 8.0 and newer (built hardware-compatible, "
            f"ampere+, on {info.gpu_name})"
        )
    if info.compute_capability == UNKNOWN:
        return "model.plan's manifest does not record its GPU: it runs only on the GPU type it was built on"
    return (
        f"model.plan runs only on GPUs of compute capability {info.compute_capability} "
        f"({info.gpu_name}); give one engine per GPU type to serve several"
    )
