"""``mmexport triton``: a Triton Inference Server model folder from mmexport artifacts.

Writes ``REPO/NAME/config.pbtxt``, ``REPO/NAME/1/model.onnx`` (with its external weights) or
``model.plan`` (``model_<cc>.plan`` per compute capability for several engines), and a copy of
each artifact's manifest beside ``config.pbtxt`` (``model.onnx.json``), where Triton ignores it
and the spec travels with the model. The folder is built in a staging folder beside the
repository (where Triton does not look) and moved into place in one rename, so a failure or
Ctrl-C leaves no half-written model; an existing model folder is replaced only when asked
(``overwrite``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmexport.core.artifact import LoadedArtifact
from mmexport.core.errors import ArtifactError
from mmexport.core.files import INTERRUPTED, output_folder, restore_foreign, sha256_file, staging_dir
from mmexport.deploy.triton_artifacts import read_artifacts
from mmexport.deploy.triton_config import VERSION
from mmexport.deploy.triton_model import TritonModel, TritonOptions, make_model

log = logging.getLogger(__name__)
CONFIG_FILE = "config.pbtxt"


@dataclass
class TritonResult:
    repository: Path
    path: Path  # REPO/NAME
    model: TritonModel
    replaced: bool = False
    sizes: dict[str, int] = field(default_factory=dict)  # file inside the model folder -> bytes

    @property
    def name(self) -> str:
        return self.model.config.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": str(self.repository),
            "model": self.name,
            "path": str(self.path),
            "config_path": str(self.path / CONFIG_FILE),
            "replaced": self.replaced,
            "files": self.sizes,
            "config": self.model.config.to_dict(),
            "config_pbtxt": self.model.config.to_pbtxt(),
            "perf_analyzer": self.model.perf_analyzer,
            "notes": list(self.model.notes),
        }


def triton_repository(
    artifacts: Sequence[str | Path | LoadedArtifact],
    repository: str | Path,
    options: TritonOptions | None = None,
    *,
    overwrite: bool = False,
) -> TritonResult:
    """Write the Triton model for ``artifacts`` into ``repository``; see the module doc."""
    model = make_model(read_artifacts(artifacts), options)
    repository = Path(repository)
    final = repository / model.config.name
    if final.exists() or final.is_symlink():
        if not final.is_dir() or final.is_symlink():
            raise ArtifactError(
                str(final), "exists and is not a model folder; choose another --name or --repo"
            )
        if not overwrite:
            raise ArtifactError(
                str(final), "exists already", hint="pass --overwrite to replace it, or choose --name"
            )
    replaced = final.exists()
    with contextlib.ExitStack() as stack:
        if not replaced:
            stack.enter_context(output_folder(final))  # creates REPO; removes what it made on failure
        staged = stack.enter_context(staging_dir(_staging_anchor(repository, final))) / final.name
        sizes = _stage(model, staged)
        _publish(staged, final, replace=replaced)
    return TritonResult(repository, final, model, replaced, sizes)


def _staging_anchor(repository: Path, final: Path) -> Path:
    """What the staging folder is made beside: the repository, so that it lies outside it (Triton
    loads every folder of its repository, hidden ones too: one left by a killed run stops the
    server at start-up), unless the repository's parent is not writable or is another file system
    (a mount point), where only a folder inside the repository can be renamed into place."""
    repo = repository.resolve()
    parent = repo.parent
    if parent != repo and os.access(parent, os.W_OK) and parent.stat().st_dev == repo.stat().st_dev:
        return repo
    return final


def _stage(model: TritonModel, folder: Path) -> dict[str, int]:
    """Copy the files (checking each recorded sha256 on the copy) and write config.pbtxt."""
    (folder / VERSION).mkdir(parents=True)
    sizes: dict[str, int] = {}
    for relative, source in model.files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        log.info(f"copying {source} -> {relative}")
        try:
            shutil.copyfile(source, target)
        except OSError as e:
            raise ArtifactError(str(source), f"cannot be copied: {e.strerror}") from e
        wanted = model.sha256.get(relative)
        if wanted is not None and sha256_file(target) != wanted:
            raise ArtifactError(
                str(source),
                "does not match the sha256 its manifest records; it changed after the manifest was written",
                hint="re-run the mmexport stage that made it",
            )
        sizes[relative] = target.stat().st_size
    (folder / CONFIG_FILE).write_text(model.config.to_pbtxt(), encoding="utf-8")
    sizes[CONFIG_FILE] = (folder / CONFIG_FILE).stat().st_size
    return dict(sorted(sizes.items()))


def _publish(staged: Path, final: Path, *, replace: bool) -> None:
    """Move the staged folder into place; one being replaced is moved aside first (back on failure)."""
    if INTERRUPTED.is_set():  # Ctrl-C arrived while copying and was swallowed on the way
        raise KeyboardInterrupt
    if not replace:
        try:
            os.replace(staged, final)
        except OSError as e:  # a folder appeared there meanwhile (another run for the same name)
            raise ArtifactError(
                str(final), f"appeared while this model was written; left as it is ({e.strerror})"
            ) from e
        return
    previous = staged.with_name(f"{final.name}.previous")  # inside the staging folder: removed with it
    os.replace(final, previous)
    try:
        os.replace(staged, final)
    except BaseException:
        os.replace(previous, final)
        raise
    if restore_foreign(
        previous, final, _model_owned(previous)
    ):  # what could not go back is kept, not removed
        kept = final.parent / f".{final.name}.{os.getpid()}.kept"
        os.replace(previous, kept)
        log.warning(f"kept files of the replaced model that the new one would have replaced, in {kept}")


def _model_owned(folder: Path) -> Callable[[str], bool]:
    """What a model folder written here holds: config.pbtxt, the version folder and the manifests
    of the files in it; other version folders and files a user added are not replaced."""
    versioned = {p.name for p in (folder / VERSION).iterdir()} if (folder / VERSION).is_dir() else set()
    manifests = {f"{name}.json" for name in versioned}
    return lambda name: name in (CONFIG_FILE, VERSION) or name in manifests or name.startswith(f"{VERSION}/")
