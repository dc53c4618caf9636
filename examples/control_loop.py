"""A plain Python control loop at a fixed rate around robot_core, with synthetic sensors.

    mmexport to-onnx -o model.onnx                         # the built-in default model
    python examples/control_loop.py model.onnx --hz 20 --seconds 5
    python examples/control_loop.py model.onnx --device cuda --cuda-graph   # on a GPU: replayed CUDA graph

Each tick grabs a camera frame (a new synthetic scene: one coloured shape) and 1/hz seconds (at most 1) of
microphone audio (a tone), runs preprocess + decide on the newest frame, the command and the
last second of audio, and publishes the decision (one line on stdout). Ticks are due at fixed
times (start + i / hz). A tick whose work ends after the next tick was due is a deadline miss:
the next tick then starts at once, and due times a whole period or more behind are skipped
rather than run back to back. Inference latency (p50/p99 over the last second of calls, or
--log-every N calls) is logged to stderr; a summary line ends the run (Ctrl-C ends it early).

The model is loaded, and called once, before the clock starts: the first call of a fresh
session costs several times a steady one (benchmarks/startup_cost.py measures it).
numpy's BLAS (the log-mel's matrix product) has a thread pool of its own besides onnxruntime's;
on a busy machine, run with OPENBLAS_NUM_THREADS=1 (see docs/embedding.md).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import dataclass
from typing import TextIO

import numpy as np
from robot_core import DecisionCore, LatencyLog, decide

from mmexport.core.errors import MmexportError
from mmexport.data.synthetic import IMAGE_MEAN, IMAGE_STD, SyntheticTask
from mmexport.runtime import Session


class SyntheticCamera:
    """HxWx3 uint8 RGB frames of the built-in task's scenes (one coloured shape on a noisy background)."""

    def __init__(self, height: int, width: int, seed: int = 0) -> None:
        self.height, self.width = height, width
        self._task = SyntheticTask(with_audio=False, seed=seed)
        self._mean = np.asarray(IMAGE_MEAN, np.float32)[:, None, None]
        self._std = np.asarray(IMAGE_STD, np.float32)[:, None, None]

    def grab(self) -> np.ndarray:
        feed, _labels = self._task.batch(1, height=self.height, width=self.width)
        pixels = feed["image"][0] * self._std + self._mean  # back to [0, 1] RGB
        return np.clip(np.rint(pixels.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


class SyntheticMicrophone:
    """A continuous sine tone, read in chunks as a sound card's driver hands them over."""

    def __init__(self, sample_rate: int, frequency_hz: float = 800.0, amplitude: float = 0.5) -> None:
        self.sample_rate = sample_rate
        self._step = 2.0 * math.pi * frequency_hz / sample_rate
        self._amplitude = amplitude
        self._position = 0

    def read(self, samples: int) -> np.ndarray:
        t = np.arange(self._position, self._position + samples, dtype=np.float64)
        self._position += samples
        return (self._amplitude * np.sin(t * self._step)).astype(np.float32)


AUDIO_SECONDS = 1.0  # the audio the model gets each tick: the last second


@dataclass
class LoopReport:
    """What a run did: ticks, deadline misses (and ticks skipped after them), latencies in ms."""

    ticks: int = 0
    misses: int = 0
    skipped: int = 0
    inference_ms: tuple[float, float] = (math.nan, math.nan)  # p50, p99
    preprocess_ms: tuple[float, float] = (math.nan, math.nan)
    tick_ms: tuple[float, float] = (math.nan, math.nan)  # preprocess, inference and publishing
    interrupted: bool = False

    def text(self) -> str:
        return (
            f"summary: {self.ticks} ticks, {self.misses} deadline misses ({self.skipped} ticks skipped); "
            f"inference p50 {self.inference_ms[0]:.2f} ms p99 {self.inference_ms[1]:.2f} ms; "
            f"preprocess p50 {self.preprocess_ms[0]:.2f} ms p99 {self.preprocess_ms[1]:.2f} ms; "
            f"tick work p50 {self.tick_ms[0]:.2f} ms p99 {self.tick_ms[1]:.2f} ms"
        )


@dataclass(frozen=True)
class LoopConfig:
    hz: float = 20.0
    seconds: float = 5.0
    command: str = "what colour is the object"
    frame_size: int = 128
    quiet: bool = False
    log_every: int | None = None  # calls between latency log lines; None: once a second


def run_loop(session: Session, config: LoopConfig, out: TextIO = sys.stdout) -> LoopReport:
    """Tick at ``config.hz`` for ``config.seconds`` (or until Ctrl-C); print each decision to ``out``."""
    period = 1.0 / config.hz
    every = config.log_every or max(1, round(config.hz))
    core = DecisionCore(
        session, config.command, audio_seconds=AUDIO_SECONDS, latency=LatencyLog("inference", window=every)
    )
    work = LatencyLog("tick work", window=10_000, every=10**9)  # kept for the summary, not logged
    prep = LatencyLog("preprocess", window=10_000, every=10**9)
    camera = SyntheticCamera(config.frame_size, config.frame_size)
    rate = core.preprocess.sample_rate
    mic = SyntheticMicrophone(rate) if rate is not None else None
    chunk = round(rate * min(period, AUDIO_SECONDS)) if rate is not None else 0  # the window keeps 1 s
    warm_up(core, camera.grab())
    report = LoopReport()
    total = max(1, round(config.seconds * config.hz))
    start = time.perf_counter()
    i = 0
    try:
        while i < total:
            _sleep_until(start + i * period)
            core.set_frame(camera.grab())  # sensor reads: in a robot these are buffer reads
            if mic is not None:
                core.push_audio(mic.read(chunk))
            began = time.perf_counter()
            decision = core.tick()
            if decision is not None and not config.quiet:
                print(
                    f"t={began - start:7.3f}s  decision={decision.label or 'none':<8} "
                    f"score={decision.score:.3f} inference={decision.latency_ms:.2f}ms",
                    file=out,
                    flush=True,
                )
            finished = time.perf_counter()
            work.record((finished - began) * 1e3)
            prep.record(core.preprocess_ms)
            report.ticks += 1
            i += 1
            due = start + i * period
            if finished > due:  # a deadline miss: the next tick is already late
                late = min(math.floor((finished - due) / period), total - i)
                report.misses += 1
                report.skipped += late
                i += late
    except KeyboardInterrupt:
        report.interrupted = True
    if report.ticks:
        for name, log in (("inference_ms", core.latency), ("preprocess_ms", prep), ("tick_ms", work)):
            stats = log.stats()
            setattr(report, name, (stats.p50, stats.p99))
    return report


def warm_up(core: DecisionCore, frame: np.ndarray) -> None:
    """One call before the clock starts, at the loop's shapes: a fresh session's first call is slow."""
    wave = core.audio.wave() if core.audio is not None else None
    first = decide(core.session, core.preprocess(frame, core.command, wave))
    print(f"first call {first.latency_ms:.1f} ms (warm-up, before the loop)", file=sys.stderr)


def _sleep_until(when: float) -> None:
    delay = when - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def open_session(
    path: str, threads: int | None, spin: bool, device: str = "cpu", cuda_graph: bool = False
) -> Session:
    """The Session, with its load time on stderr. ``cuda_graph``: the loop's one shape is captured
    once as a CUDA graph and replayed every tick (``device`` cuda)."""
    t0 = time.perf_counter()
    options = {"cuda_graph": True} if cuda_graph else None
    session = Session(path, device=device, threads=threads, spin=spin, options=options)
    info = session.describe()
    print(
        f"loaded {path} in {(time.perf_counter() - t0) * 1e3:.0f} ms "
        f"({info['backend']}, {info.get('provider', '?')})",
        file=sys.stderr,
    )
    return session


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run an mmexport model in a fixed-rate control loop on synthetic camera, "
        "command and microphone data; print each decision, log latency and deadline misses.",
    )
    parser.add_argument(
        "model", help="ONNX file or TensorRT engine with its manifest (mmexport to-onnx -o ...)"
    )
    parser.add_argument("--hz", type=float, default=20.0, help="loop rate (default 20)")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to run (default 5)")
    parser.add_argument(
        "--command", default=LoopConfig.command, help="the text command (default: %(default)r)"
    )
    parser.add_argument(
        "--frame-size", type=int, default=128, help="camera frames are SIZExSIZE (default 128)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="onnxruntime intra-op threads (default: its own)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument(
        "--cuda-graph",
        action="store_true",
        help="with --device cuda: capture the model once as a CUDA graph and replay it every tick",
    )
    parser.add_argument(
        "--spin",
        action="store_true",
        help="let idle worker threads busy-wait (off: they leave the cores to you)",
    )
    parser.add_argument(
        "--log-every", type=int, default=None, help="calls between latency log lines (default: one second's)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no line per decision, only the summary")
    args = parser.parse_args(argv)
    if not (args.hz > 0 and args.seconds > 0 and args.frame_size > 0 and (args.log_every or 1) > 0):
        parser.error("--hz, --seconds, --frame-size and --log-every must be > 0")
    if not (math.isfinite(args.hz) and math.isfinite(args.seconds)):
        parser.error("--hz and --seconds must be finite (run long with a large --seconds; Ctrl-C ends it)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    config = LoopConfig(args.hz, args.seconds, args.command, args.frame_size, args.quiet, args.log_every)
    try:
        session = open_session(args.model, args.threads, args.spin, args.device, args.cuda_graph)
        report = run_loop(session, config)
    except MmexportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(report.text())
    return 130 if report.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
