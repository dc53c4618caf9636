"""``Session``: load an artifact and its manifest, validate feeds against the spec, run a backend."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.core.artifact import LoadedArtifact
from mmexport.core.errors import ArtifactError, BackendError
from mmexport.core.manifest import (
    Manifest,
    check_files,
    external_data_file,
    read_manifest,
    require_external_data,
)
from mmexport.core.onnx_file import check_file
from mmexport.core.spec import InputSpec, OutputSpec
from mmexport.runtime.backends.base import Backend, BackendConfig
from mmexport.runtime.backends.registry import find_backend, load_backend_class
from mmexport.runtime.graph_spec import check_spec_matches, spec_from_graph
from mmexport.runtime.runner import Runner


class Session(Runner):
    """One loaded artifact, ready to run feeds (``dict[str, numpy.ndarray]``).

    ``backend``: ``"auto"`` (from the manifest's kind, else the file suffix), ``"onnxrt"``, or any
    registered backend. ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. ``provider`` (onnxruntime):
    ``"cpu"``, ``"cuda"`` or ``"tensorrt"`` (default: the device's). ``threads``: intra-op CPU
    threads. ``spin``: let idle worker threads busy-wait (None: the backend's default; False
    when several models share the cores). ``cache_dir``: TensorRT engine cache (default
    ``<artifact>.trt-cache``).
    ``verify_sha256``: also check the file (and its external data file) against the manifest's
    hashes (reads all of them). Off by default: without it the manifest is trusted, and a file
    modified in place (a flipped bit in a weight) may load and run.
    ``options``: backend-specific settings (onnxruntime on CUDA: ``{"cuda_graph": True}``; TensorRT
    engines: ``{"cuda_graph": True, "pinned": True}``).

    ``path`` may be a ``LoadedArtifact`` (``mmexport.core.artifact.load_artifact``): its manifest is
    not read again, and ``verify_sha256`` reuses the hash it holds.

    The spec comes from the manifest (``<artifact>.json``); without one, from the graph's inputs
    (``spec_source == "graph"``: dtypes, ranks, fixed axes and shared dim names are checked, but
    dims have no ranges).

    Thread safety: ``run`` may be called from several threads at once on one Session; validation
    keeps no state between calls and onnxruntime supports concurrent runs on one session (on
    CUDA, each ``run_on_device`` call binds its own I/O; with ``cuda_graph``, calls at the same
    shapes take turns). Outputs are new arrays per call. ``close`` waits for the
    calls in flight, then releases the backend; calls that need it raise ``RuntimeError`` afterwards.
    """

    def __init__(
        self,
        path: str | Path | LoadedArtifact,
        backend: str = "auto",
        device: str = "cpu",
        *,
        provider: str | None = None,
        threads: int | None = None,
        spin: bool | None = None,
        cache_dir: str | Path | None = None,
        verify_sha256: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        loaded = path if isinstance(path, LoadedArtifact) else None  # its manifest and hash are reused
        self.path = check_file(path.path if isinstance(path, LoadedArtifact) else path)
        self.manifest: Manifest | None = loaded.manifest if loaded is not None else read_manifest(self.path)
        data = _check_files(self.path, self.manifest, verify_sha256, loaded)
        entry = find_backend(backend, self.path, self.manifest.kind if self.manifest else None)
        kind, device_id = _parse_device(device)
        _check_threads(threads)
        config = BackendConfig(
            device=kind,
            device_id=device_id,
            provider=provider,
            threads=threads,
            cache_dir=Path(cache_dir) if cache_dir is not None else None,
            spin=spin,
            options=dict(options or {}),
        )
        spec = self.manifest.spec if self.manifest else None
        try:
            self._backend: Backend = load_backend_class(entry)(self.path, spec, config)
        except ArtifactError as e:
            if data is None or e.hint is not None or verify_sha256:
                raise
            raise ArtifactError(
                e.path,
                e.message.removeprefix(f"{e.path}: "),
                hint=f"its weights are in {data.name}, which may be damaged; verify_sha256=True checks it",
            ) from e
        try:
            graph = spec_from_graph(self.path, self._backend.inputs(), self._backend.outputs())
            if spec is not None:
                check_spec_matches(self.path, spec, graph)
        except BaseException:
            self._backend.close()  # a refused artifact keeps no device memory or CUDA stream
            raise
        self._use_spec(spec if spec is not None else graph, "manifest" if spec is not None else "graph")
        self.backend_name = entry.name
        self.capabilities = self._backend.capabilities

    @property
    def inputs(self) -> tuple[InputSpec, ...]:
        return self.spec.inputs

    @property
    def outputs(self) -> tuple[OutputSpec, ...]:
        return self.spec.outputs

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self._backend.outputs()]

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._backend.run(feeds)

    def _run_on_device(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Feeds as device tensors (onnxruntime: ``OrtValue``; TensorRT: CUDA torch tensors,
        ``DeviceArray``) or host arrays, outputs left on the device."""
        return self._backend.run_on_device(feeds)

    def _feed_meta(self, name: str, value: Any) -> tuple[tuple[int, ...], np.dtype]:
        return self._backend.feed_meta(name, value)

    def _timings(self) -> dict[str, float] | None:
        """GPU milliseconds of the last call by phase (TensorRT: gpu, h2d, compute, d2h)."""
        return self._backend.timings()

    def describe(self) -> dict[str, Any]:
        """Backend, provider, device and library, plus the artifact's precision, for reports."""
        info = {"artifact": str(self.path), **self._backend.describe(), "spec_source": self.spec_source}
        info["precision"] = self.manifest.precision if self.manifest else None
        return info

    def _close(self) -> None:
        """Release the backend (device memory, its session)."""
        self._backend.close()

    def __repr__(self) -> str:
        return f"Session({str(self.path)!r}, backend={self.backend_name!r})"


def _check_files(
    path: Path, manifest: Manifest | None, verify_sha256: bool, loaded: LoadedArtifact | None = None
) -> Path | None:
    """Hash the artifact and its external data if asked (a loaded artifact's hash is reused);
    always require the external data file the manifest records (its path; None without one)."""
    if manifest is None:
        return None
    if verify_sha256 and loaded is not None:
        loaded.verify()
    elif verify_sha256:
        check_files(path, manifest)
    data = external_data_file(path, manifest)
    if data is None:
        return None
    require_external_data(data[0])
    return data[0]


def _parse_device(device: str) -> tuple[str, int]:
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise BackendError("session", f"unknown device {device!r}", hint="cpu, cuda or cuda:N")
    return kind, int(index or 0)


def _check_threads(threads: int | None) -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise BackendError("session", f"threads must be a whole number >= 1, got {threads!r}")
