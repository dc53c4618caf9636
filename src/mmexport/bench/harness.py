"""The measurement: first call, time-based warm-up, then steady-state calls interleaved across targets.

For each shape case: every target's first call at the new shapes is timed alone (after load, or
after a shape change), then each warms up for ``warmup_s``, then targets take turns in blocks of
about ``block_s`` of calls until each has spent ``duration_s`` in timed calls (or made
``iterations`` calls), so that machine drift hits every target alike while switching costs stay
rare. Each call is timed on its own with ``time.perf_counter``, around a synchronous ``run``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmexport.bench.cases import ShapeCase, batch_dim, resolve_point
from mmexport.bench.config import BenchConfig
from mmexport.bench.environment import collect_environment
from mmexport.bench.gpu_timing import gpu_stats, timings_hook
from mmexport.bench.report import BenchReport, CaseResult, TargetInfo
from mmexport.bench.stats import LatencyStats
from mmexport.core.artifact import LoadedArtifact
from mmexport.runtime.runner import Runner

log = logging.getLogger(__name__)

PROGRESS_S = 5.0
"""Longest stretch of measuring without a progress line."""


Runnable = Runner
"""What the harness measures: any runtime ``Runner`` (``Session``, ``SplitSession``, a split part)."""


@dataclass
class BenchTarget:
    """An artifact to open (``path`` with Session options) or a ``runner`` already open."""

    path: str | Path | LoadedArtifact | None = None  # a LoadedArtifact's manifest is not read again
    label: str | None = None
    backend: str = "auto"
    device: str = "cpu"
    provider: str | None = None
    threads: int | None = None
    # Off by default: a session's spinning worker threads would slow the next artifact's call
    # in the interleaved measurement (measured here: eager PyTorch 12x slower beside onnxruntime).
    spin: bool = False
    runner: Runner | None = None
    options: dict[str, Any] | None = None  # backend-specific: cuda_graph (onnxruntime, TensorRT), pinned


@dataclass
class _Open:
    info: TargetInfo
    runner: Runner
    ranged: bool


def benchmark(
    targets: Sequence[str | Path | BenchTarget],
    cases: Sequence[ShapeCase] | None = None,
    config: BenchConfig | None = None,
) -> BenchReport:
    """Measure every target at every case (default: the spec's opt point) and return the report."""
    config = config or BenchConfig()
    opened = [_open(t if isinstance(t, BenchTarget) else BenchTarget(path=t)) for t in targets]
    _unique_labels(opened)
    cases = list(cases) if cases else [ShapeCase("opt")]
    _check_cases(opened, cases)
    results: list[CaseResult] = []
    for index, case in enumerate(cases):
        log.info(f"[{index + 1}/{len(cases)}] {case.label}")
        results += _measure_case(opened, case, config, "load" if index == 0 else "shape change")
    environment = collect_environment([o.info.backend for o in opened])
    return BenchReport(
        targets=[o.info for o in opened],
        cases=[c.label for c in cases],
        results=results,
        environment=environment,
        config=config,
    )


def _open(target: BenchTarget) -> _Open:
    if target.runner is not None:
        runner = target.runner
        if not isinstance(runner, Runner):
            raise TypeError(
                f"BenchTarget.runner must be a mmexport.runtime.Runner (subclass it and implement _run), "
                f"got {type(runner).__qualname__}"
            )
        label = target.label or str(_artifact(target) or type(runner).__name__)
        return _Open(TargetInfo(label, _artifact(target), None, runner.describe()), runner, _ranged(runner))
    if target.path is None:
        raise ValueError("a BenchTarget needs a path or a runner")
    from mmexport.runtime import Session

    artifact = str(_artifact(target))
    log.info(f"loading {artifact}")
    start = time.perf_counter()
    session = Session(
        target.path,
        target.backend,
        target.device,
        provider=target.provider,
        threads=target.threads,
        spin=target.spin,
        options=target.options,
    )
    load_s = time.perf_counter() - start
    label = target.label or Path(artifact).name
    return _Open(TargetInfo(label, artifact, load_s, session.describe()), session, _ranged(session))


def _ranged(runner: Runner) -> bool:
    return runner.spec_source != "graph"


def _artifact(target: BenchTarget) -> str | None:
    if isinstance(target.path, LoadedArtifact):
        return str(target.path.path)
    return str(target.path) if target.path is not None else None


def _unique_labels(opened: list[_Open]) -> None:
    seen: dict[str, int] = {}
    for o in opened:
        n = seen.get(o.info.label, 0) + 1
        seen[o.info.label] = n
        if n > 1:
            o.info.label = f"{o.info.label} #{n}"


def _check_cases(opened: list[_Open], cases: Sequence[ShapeCase]) -> None:
    """Before measuring anything: case labels unique, every case valid for every target."""
    labels = [c.label for c in cases]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"case labels must be unique, {repeated[0]!r} is repeated (see cases.unique_cases)")
    for case in cases:
        for o in opened:
            resolve_point(o.runner.spec, case, ranged=o.ranged)


def _measure_case(opened: list[_Open], case: ShapeCase, config: BenchConfig, after: str) -> list[CaseResult]:
    feeds, batches = [], []
    for o in opened:
        point = resolve_point(o.runner.spec, case, ranged=o.ranged)
        feeds.append(o.runner.spec.sample_feed(point, seed=config.seed))
        dim = batch_dim(o.runner.spec)
        batches.append(point[dim] if dim is not None else 1)
    first = [_time_call(o.runner, f) for o, f in zip(opened, feeds, strict=True)]
    warm = [_warm_up(o.runner, f, config.warmup_s) for o, f in zip(opened, feeds, strict=True)]
    blocks = [max(1, int(config.block_s / max(float(np.median(w)), 1e-9))) for w in warm]
    budget = f"{config.iterations} calls" if config.iterations else f"{config.duration_s:g} s"
    log.info(f"  measuring {len(opened)} target(s), {budget} each, interleaved")
    gpu: list[list[Any]] = [[] for _ in opened]
    samples = _interleave(opened, feeds, blocks, config, gpu)
    results = []
    for i, o in enumerate(opened):
        ms = np.asarray(samples[i]) * 1e3
        stats = LatencyStats.from_ms(ms)
        log.info(f"  {o.info.label}: p50 {stats.p50:.3f} ms, p99 {stats.p99:.3f} ms ({stats.count} calls)")
        results.append(
            CaseResult(
                target=o.info.label,
                case=case.label,
                shapes={k: list(v.shape) for k, v in feeds[i].items()},
                batch=batches[i],
                first_call_ms=first[i] * 1e3,
                first_call_after=after,
                warmup_calls=len(warm[i]),
                stats=stats,
                samples_ms=ms,
                gpu_ms=gpu_stats(gpu[i]),
                trtexec=_trtexec(o, feeds[i], config),
            )
        )
    return results


def _trtexec(o: _Open, feeds: Mapping[str, np.ndarray], config: BenchConfig) -> list[str]:
    """The equivalent trtexec line(s) for engines and ONNX files; none for other artifacts."""
    from mmexport.core.manifest import package_versions
    from mmexport.trt.trtexec import ENGINE_SUFFIXES, generations_for, trtexec_command

    artifact = o.info.artifact
    if artifact is None or Path(artifact).suffix.lower() not in (*ENGINE_SUFFIXES, ".onnx"):
        return []
    installed = package_versions("tensorrt").get("tensorrt")
    shapes = {k: v.shape for k, v in feeds.items()}
    return [
        trtexec_command(
            artifact,
            o.runner.spec,
            shapes,
            generation,
            warmup_s=config.warmup_s,
            duration_s=config.duration_s,
            iterations=config.iterations or config.min_iterations,
            dla_core=_dla_core(o.info.backend),
        )
        for generation in generations_for(o.info.backend, installed)
    ]


def _dla_core(backend: Mapping[str, object]) -> int | None:
    core = backend.get("dla_core")
    return core if isinstance(core, int) else None


def _time_call(runner: Runner, feeds: Mapping[str, np.ndarray]) -> float:
    start = time.perf_counter()
    runner.run(feeds)
    return time.perf_counter() - start


def _warm_up(runner: Runner, feeds: Mapping[str, np.ndarray], seconds: float) -> list[float]:
    """Calls for ``seconds`` (at least one), each timed, to size the interleaving blocks."""
    times = [_time_call(runner, feeds)]
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        times.append(_time_call(runner, feeds))
    return times


def _interleave(
    opened: list[_Open],
    feeds: Sequence[Mapping[str, np.ndarray]],
    blocks: list[int],
    config: BenchConfig,
    gpu: list[list[Any]],
) -> list[list[float]]:
    """Host seconds per call; ``gpu[i]`` gets each call's GPU timings where the runner has them.
    A progress line at least every ``PROGRESS_S`` seconds, so that a long case shows it is alive."""
    samples: list[list[float]] = [[] for _ in opened]
    spent = [0.0 for _ in opened]
    clock = time.perf_counter
    start_s = next_report = clock()
    next_report += PROGRESS_S

    def done(i: int) -> bool:
        if config.iterations is not None:
            return len(samples[i]) >= config.iterations
        return spent[i] >= config.duration_s and len(samples[i]) >= config.min_iterations

    while not all(done(i) for i in range(len(opened))):
        for i, o in enumerate(opened):
            run, feed, out = o.runner.run, feeds[i], samples[i]
            hook = timings_hook(o.runner)
            n = blocks[i]
            if config.iterations is not None:
                n = min(n, config.iterations - len(out))
            first = len(out)
            for _ in range(n):
                start = clock()
                run(feed)
                out.append(clock() - start)
                timed = hook() if hook is not None else None
                if timed:
                    gpu[i].append(timed)
            spent[i] += sum(out[first:])
            if clock() >= next_report:
                next_report = clock() + PROGRESS_S
                log.info(_progress_line(opened, samples, spent, config, clock() - start_s))
    return samples


def _progress_line(
    opened: list[_Open], samples: list[list[float]], spent: list[float], config: BenchConfig, elapsed: float
) -> str:
    """``  ... 12 s: a.onnx 4000/8000 calls, b.onnx ...`` (or seconds spent of ``duration_s``)."""
    parts = []
    for o, done, seconds in zip(opened, samples, spent, strict=True):
        if config.iterations is not None:
            parts.append(f"{o.info.label} {len(done)}/{config.iterations} calls")
        else:
            parts.append(f"{o.info.label} {seconds:.1f}/{config.duration_s:g} s")
    return f"  ... {elapsed:.0f} s: " + ", ".join(parts)
