"""The core of a robot node that runs an mmexport model: plain, typed functions; no ROS, no torch.

    from mmexport.runtime import Session
    from robot_core import DecisionCore, Preprocessor, decide

    session = Session("model.onnx", spin=False)    # once, at start-up (it costs: see docs/runtime.md)
    preprocess = Preprocessor(session.spec)         # reads the spec's "preprocess" entries once
    feeds = preprocess(frame, "what colour is the object", audio_wave)
    decision = decide(session, feeds)               # Decision(label='red', score=0.98, latency_ms=0.7)

Inputs are what robots have: a camera frame as an HxWx3 ``uint8`` RGB array, a command string,
and a mono float wave at the spec's sample rate (``AudioWindow`` keeps the last second of a
stream of chunks). ``DecisionCore`` holds the newest of each between messages, as a node does.
Bad inputs are ``mmexport.InputError`` (one line naming the input, what it takes and what it
got), raised before the model runs. Used by control_loop.py and ros2_node.py.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from mmexport.core.errors import DataError, InputError, SpecError
from mmexport.core.spec import InputSpec, ModelSpec
from mmexport.data.feed_files import top_k
from mmexport.data.preprocess import dim_range, normalize_image, text_to_tokens, wave_to_log_mel
from mmexport.runtime import Session

Feeds = dict[str, np.ndarray]
LOG = logging.getLogger("mmexport.examples")

# modality -> the preprocess kind that turns robot data into that input
KINDS = {"image": "image", "text": "tokens", "audio": "log_mel"}


@dataclass(frozen=True)
class Decision:
    """The top-1 label of the model's labelled output, its probability, and the model call's time.

    ``label`` is None (and ``score`` NaN) when the output is not finite: no decision this tick.
    """

    label: str | None
    score: float
    latency_ms: float


# -- preprocessing -------------------------------------------------------------------------------


class Preprocessor:
    """``preprocess(frame, command, audio)`` -> feeds (batch 1) for a spec's image, text and audio inputs.

    Built once per model: it finds the inputs by modality and reads their ``preprocess`` entries
    (image mean/std/scale/channel order, token vocab, log-mel parameters). A model without an
    audio input ignores ``audio``; inputs of other modalities (``sensor``, ``tensor``) are not
    robot data this core knows how to make, and are refused here, once.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.image_input = _input_of(spec, "image")
        self.text_input = _input_of(spec, "text")
        self.audio_input = _input_of(spec, "audio")
        known = {i.name for i in (self.image_input, self.text_input, self.audio_input) if i is not None}
        other = [i.name for i in spec.inputs if i.name not in known]
        if other:
            raise SpecError(
                f"input {other[0]!r} is not an image, text or audio input; this example makes only those",
                hint="extend Preprocessor for it",
            )
        self._tokens: dict[str, np.ndarray] = {}

    def __call__(self, frame: np.ndarray, command: str, audio: np.ndarray | None = None) -> Feeds:
        feeds: Feeds = {}
        if self.image_input is not None:
            feeds[self.image_input.name] = self.image(frame)[None]
        if self.text_input is not None:
            feeds[self.text_input.name] = self.tokens(command)[None]
        if self.audio_input is not None:
            if audio is None:
                raise InputError(self.audio_input.name, "this model takes audio, and none was given")
            feeds[self.audio_input.name] = self.audio(audio)[None]
        return feeds

    def image(self, frame: np.ndarray) -> np.ndarray:
        """An HxWxC uint8 RGB frame as the normalized [C, H, W] array the spec's preprocess makes.

        ``mmexport.data.preprocess.normalize_image``: the arithmetic of ``load_image`` after decoding
        (scale, channel order, mean, std), for frames already in memory. Frames are not resized: a size
        outside the spec's height/width range is an error (resize upstream, once, knowingly).
        """
        inp = _require(self.image_input, "image")
        channels = int(inp.shape[1])
        if not (
            isinstance(frame, np.ndarray)
            and frame.dtype == np.uint8
            and frame.ndim == 3
            and frame.shape[2] == channels
        ):
            raise InputError(
                inp.name,
                f"camera frame must be an HxWx{channels} uint8 array, got {_describe(frame)}",
                expected=f"HxWx{channels} uint8",
                actual=_describe(frame),
            )
        _check_frame_size(frame, inp, self.spec)
        return normalize_image(frame, inp)

    def tokens(self, command: str) -> np.ndarray:
        """The command's token ids [S], by ``mmexport.data.preprocess.text_to_tokens`` (cached per command).

        The ids and the errors (unknown words, too long) are exactly those of ``mmexport run`` and
        of calibration data. Commands change rarely; frames every tick.
        """
        inp = _require(self.text_input, "text")
        if not isinstance(command, str):
            raise InputError(inp.name, f"command must be a str, got {type(command).__name__}")
        cached = self._tokens.get(command)
        if cached is None:
            cached = text_to_tokens(command, inp, self.spec, sample="command", source="the command")
            if len(self._tokens) >= 256:
                self._tokens.clear()
            self._tokens[command] = cached
        return cached

    def audio(self, wave: np.ndarray) -> np.ndarray:
        """A mono float wave at the spec's sample rate as its log-mel [n_mels, frames].

        ``mmexport.data.preprocess.wave_to_log_mel``, as ``load_wav`` uses it; with ``duration_s``
        in the spec the wave is cut or zero-padded to that length first.
        """
        inp = _require(self.audio_input, "audio")
        pre = inp.preprocess or {}
        rate = int(pre["sample_rate"])
        if not (isinstance(wave, np.ndarray) and wave.ndim == 1 and wave.dtype.kind == "f" and wave.size):
            raise InputError(
                inp.name,
                f"audio must be a non-empty 1-D float array (mono, {rate} Hz), got {_describe(wave)}",
                expected="1-D float",
                actual=_describe(wave),
            )
        try:
            return wave_to_log_mel(
                wave, rate, inp, self.spec, sample="audio", source=f"{wave.shape[0]} samples"
            )
        except DataError as error:  # the runtime's error type: this is a live input, not a dataset
            message = str(error).split(": ", 1)[-1].removesuffix(f" ({error.hint})")
            raise InputError(inp.name, message, hint=error.hint) from None

    @property
    def sample_rate(self) -> int | None:
        """The audio input's sample rate, or None for a model without audio."""
        if self.audio_input is None:
            return None
        return int((self.audio_input.preprocess or {})["sample_rate"])


def _input_of(spec: ModelSpec, modality: str) -> InputSpec | None:
    """The spec's only input of ``modality`` (None if none), checked to carry its preprocess kind."""
    found = [i for i in spec.inputs if i.modality == modality]
    if not found:
        return None
    if len(found) > 1:
        names = ", ".join(i.name for i in found)
        raise SpecError(f"inputs {names} are all {modality}; this example feeds one input per modality")
    inp = found[0]
    kind = (inp.preprocess or {}).get("kind")
    if kind != KINDS[modality]:
        raise SpecError(
            f"input {inp.name!r} needs preprocess kind {KINDS[modality]!r} to be made from robot data, "
            f"the spec gives {kind!r}",
            hint="see docs/spec.md",
        )
    return inp


def _require(inp: InputSpec | None, modality: str) -> InputSpec:
    if inp is None:
        raise InputError(None, f"this model has no {modality} input")
    return inp


def _check_frame_size(frame: np.ndarray, inp: InputSpec, spec: ModelSpec) -> None:
    (h_low, h_high), (w_low, w_high) = dim_range(inp.shape[2], spec), dim_range(inp.shape[3], spec)
    height, width = frame.shape[:2]
    if not (h_low <= height <= h_high and w_low <= width <= w_high):
        raise InputError(
            inp.name,
            f"camera frame is {height}x{width} (HxW); the model takes heights {h_low}-{h_high} "
            f"and widths {w_low}-{w_high}",
            expected=[[h_low, h_high], [w_low, w_high]],
            actual=[height, width],
            hint="resize or crop frames to fit",
        )


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"shape {'x'.join(str(d) for d in value.shape) or 'scalar'} {value.dtype}"
    return type(value).__name__


# -- deciding --------------------------------------------------------------------------------------


def labelled_output(spec: ModelSpec) -> tuple[str, tuple[str, ...]]:
    """The first output whose spec names its labels, and those labels."""
    for out in spec.outputs:
        if out.labels:
            return out.name, out.labels
    raise SpecError("no output has labels, so there is no label to decide on", hint='add "labels"')


def top1(outputs: Mapping[str, np.ndarray], spec: ModelSpec) -> tuple[str | None, float]:
    """The label with the highest score in the labelled output (batch 1), and its probability.

    Probabilities as ``mmexport run`` reports them (``mmexport.data.feed_files.top_k``):
    softmax of logits, or the scores themselves when they already sum to 1.
    """
    name, labels = labelled_output(spec)
    scores = outputs[name]
    if scores.ndim < 1 or scores.shape[-1] != len(labels) or scores.size != len(labels):
        raise InputError(
            None,
            f"output {name!r} has shape {list(scores.shape)}; one decision needs batch 1 "
            f"with {len(labels)} scores",
        )
    (ranked,) = top_k(scores, labels, 1)
    if not ranked:  # NaN or inf in the output
        return None, float("nan")
    return str(ranked[0]["label"]), float(ranked[0]["probability"])


def decide(session: Session, feeds: Mapping[str, np.ndarray]) -> Decision:
    """Run ``feeds`` (validated by the Session) and take the top-1 label; times the run alone."""
    start = time.perf_counter()
    outputs = session.run(feeds)
    latency_ms = (time.perf_counter() - start) * 1e3
    label, score = top1(outputs, session.spec)
    return Decision(label, score, latency_ms)


# -- latency ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles (numpy's linear interpolation) over the last ``window`` calls, in ms."""

    name: str
    calls: int
    window: int
    p50: float
    p99: float
    max: float

    def text(self) -> str:
        return (
            f"{self.name}: p50 {self.p50:.2f} ms, p99 {self.p99:.2f} ms, max {self.max:.2f} ms "
            f"(last {self.window} of {self.calls} calls)"
        )


class LatencyLog:
    """Rolling p50/p99 over the last ``window`` calls, logged every ``every`` calls (default: window).

    ``record`` costs an append; the percentiles are computed only when logging. ``log`` takes the
    line (default: the ``mmexport.examples`` logger at INFO; a ROS node passes its logger's info).
    """

    def __init__(
        self,
        name: str = "inference",
        window: int = 100,
        every: int | None = None,
        log: Callable[[str], object] | None = None,
    ) -> None:
        if window < 1 or (every is not None and every < 1):
            raise ValueError(f"window and every must be >= 1, got {window} and {every}")
        self.name = name
        self.every = every or window
        self.calls = 0
        self._times: deque[float] = deque(maxlen=window)
        self._log = log or LOG.info

    def record(self, ms: float) -> LatencyStats | None:
        """Add one call's time; every ``every`` calls, log and return the stats."""
        self._times.append(ms)
        self.calls += 1
        if self.calls % self.every:
            return None
        stats = self.stats()
        self._log(stats.text())
        return stats

    def stats(self) -> LatencyStats:
        if not self._times:
            raise ValueError("no calls recorded yet")
        times = np.fromiter(self._times, dtype=np.float64, count=len(self._times))
        p50, p99 = np.percentile(times, [50, 99])
        return LatencyStats(self.name, self.calls, len(times), float(p50), float(p99), float(times.max()))


# -- state between messages ----------------------------------------------------------------------


class AudioWindow:
    """The last ``seconds`` of a mono stream: chunks of any length in, one fixed-length wave out.

    Starts as silence (zeros), so the model gets a valid input from the first tick.
    """

    def __init__(self, sample_rate: int, seconds: float = 1.0) -> None:
        self.sample_rate = sample_rate
        self._wave = np.zeros(max(1, round(sample_rate * seconds)), dtype=np.float32)

    def push(self, chunk: np.ndarray) -> None:
        if not (isinstance(chunk, np.ndarray) and chunk.ndim == 1 and chunk.dtype.kind == "f"):
            raise InputError(None, f"audio chunk must be a 1-D float array, got {_describe(chunk)}")
        n = min(chunk.shape[0], self._wave.shape[0])
        if n:
            self._wave[:-n] = self._wave[n:]
            self._wave[-n:] = chunk[-n:]

    def wave(self) -> np.ndarray:
        return self._wave.copy()


class DecisionCore:
    """What a node keeps between messages and does per tick: newest frame and command, last audio.

    ``set_frame`` / ``set_command`` / ``push_audio`` from sensor callbacks, ``tick()`` from the
    loop or timer: preprocess the newest data, decide, record the latency. ``tick()`` returns None
    until a first frame has arrived (for models with an image input).
    """

    def __init__(
        self,
        session: Session,
        command: str,
        *,
        audio_seconds: float = 1.0,
        latency: LatencyLog | None = None,
    ) -> None:
        self.session = session
        self.preprocess = Preprocessor(session.spec)
        self.command = command
        rate = self.preprocess.sample_rate
        self.audio = AudioWindow(rate, audio_seconds) if rate is not None else None
        self.latency = latency or LatencyLog()
        self.frame: np.ndarray | None = None
        self.preprocess_ms = float("nan")  # the last tick's preprocessing time

    def set_frame(self, frame: np.ndarray) -> None:
        self.frame = frame

    def set_command(self, command: str) -> None:
        self.command = command

    def push_audio(self, chunk: np.ndarray) -> None:
        if self.audio is not None:
            self.audio.push(chunk)

    def tick(self) -> Decision | None:
        if self.frame is None and self.preprocess.image_input is not None:
            return None
        frame = self.frame if self.frame is not None else np.zeros((0, 0, 3), np.uint8)
        wave = self.audio.wave() if self.audio is not None else None
        start = time.perf_counter()
        feeds = self.preprocess(frame, self.command, wave)
        self.preprocess_ms = (time.perf_counter() - start) * 1e3
        decision = decide(self.session, feeds)
        self.latency.record(decision.latency_ms)
        return decision
