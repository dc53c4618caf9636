"""The examples on the built-in default model (exported once, about 6 s): its answers make sense.

The trained model answers questions about the synthetic scenes it was trained on; fed through
robot_core's preprocessing, it must give the task's answers, so a preprocessing step that
differs from the spec's (normalization, tokens, log-mel) shows up here as wrong answers.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from robot_core import Preprocessor, decide

from mmexport.data.synthetic import IMAGE_MEAN, IMAGE_STD, LABELS, SyntheticTask
from mmexport.export import ExportConfig, ParityConfig, to_onnx
from mmexport.runtime import Session

from .conftest import EXAMPLES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mmexport to-onnx`` of the default model; the torchscript exporter, fewer gate points: faster."""
    path = tmp_path_factory.mktemp("default") / "model.onnx"
    return to_onnx(
        None, path, export=ExportConfig(exporter="torchscript"), parity=ParityConfig(random_points=0)
    ).path


def scenes(question: int, count: int) -> list[tuple[np.ndarray, str]]:
    """Camera frames (HxWx3 uint8) of the task's scenes, with the answer to colour (0) or shape (1)."""
    weights = (1.0, 0.0) if question == 0 else (0.0, 1.0)
    task = SyntheticTask(with_audio=False, seed=7 + question, question_weights=weights)
    mean, std = np.float32(IMAGE_MEAN)[:, None, None], np.float32(IMAGE_STD)[:, None, None]
    out = []
    for _ in range(count):
        feed, labels = task.batch(1, height=112, width=144)
        pixels = (feed["image"][0] * std + mean).transpose(1, 2, 0)
        out.append((np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8), LABELS[int(labels[0])]))
    return out


def tone(hz: float) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(16000) / 16000)).astype(np.float32)


@pytest.mark.parametrize(
    ("question", "command"), [(0, "what colour is the object"), (1, "which shape does the object have")]
)
def test_decisions_answer_the_command_about_the_frame(default_model, question, command):
    session = Session(default_model, spin=False)
    preprocess = Preprocessor(session.spec)
    frames = scenes(question, 24)
    correct = 0
    for frame, answer in frames:
        feeds = preprocess(frame, command, tone(800.0))
        decision = decide(session, feeds)
        logits = session.run(feeds)["logits"][0]
        assert decision.label == LABELS[int(np.argmax(logits))]  # the Session's own top-1
        correct += decision.label == answer
    assert correct >= 22, f"{correct} of {len(frames)} right"


def test_pitch_questions_are_answered_from_the_audio(default_model):
    session = Session(default_model, spin=False)
    preprocess = Preprocessor(session.spec)
    frame, _ = scenes(0, 1)[0]
    for hz, answer in [(250.0, "low"), (800.0, "mid"), (2500.0, "high")]:
        decision = decide(session, preprocess(frame, "what pitch is the tone", tone(hz)))
        assert decision.label == answer, (hz, decision)


def test_the_control_loop_runs_the_default_model(default_model):
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "control_loop.py"),
            str(default_model),
            "--hz",
            "20",
            "--seconds",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    labels = re.findall(r"decision=(\w+)", result.stdout)
    assert len(labels) >= 5 and set(labels) <= {"red", "green", "blue"}, result.stdout
