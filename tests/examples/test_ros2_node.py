"""examples/ros2_node.py without ROS: it imports, refuses to run with one clear line, converts messages.

rclpy is not installed here (it ships with ROS 2, not on PyPI) and is not imitated: the message
objects below are plain namespaces with the fields of sensor_msgs/Image and
std_msgs/Float32MultiArray, enough for the node's numpy conversions.
"""

from __future__ import annotations

import array
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import ros2_node
from robot_core import Decision

from mmexport.core.errors import MmexportError

from .conftest import EXAMPLES


def test_imports_without_ros_and_says_what_to_install(tmp_path):
    blockers = tmp_path / "blockers"
    blockers.mkdir()
    (blockers / "rclpy.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'rclpy'\", name='rclpy')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blockers), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "ros2_node.py")], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: ros2_node.py needs ROS 2's Python packages (rclpy is not installed); "
        "source /opt/ros/<distro>/setup.bash first (rclpy does not come from pip)"
    )
    assert "rclpy" not in sys.modules  # importing the module for the tests below did not need it


def image(pixels: np.ndarray, encoding: str, pad: int = 0) -> SimpleNamespace:
    """A sensor_msgs/Image-like message, rows padded by ``pad`` bytes as some drivers do."""
    height, width, _ = pixels.shape
    rows = np.zeros((height, width * 3 + pad), np.uint8)
    rows[:, : width * 3] = pixels.reshape(height, -1)
    return SimpleNamespace(
        height=height, width=width, encoding=encoding, step=width * 3 + pad, data=rows.tobytes()
    )


def test_rgb8_and_bgr8_images_become_rgb_frames():
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ros2_node.frame_from_image(image(pixels, "rgb8", pad=3)), pixels)
    bgr = image(np.ascontiguousarray(pixels[..., ::-1]), "bgr8")
    bgr.data = array.array("B", bgr.data)  # rosidl holds uint8[] sequences as array.array
    frame = ros2_node.frame_from_image(bgr)
    np.testing.assert_array_equal(frame, pixels)
    assert frame.flags["C_CONTIGUOUS"] and frame.dtype == np.uint8


def test_unsupported_or_short_images_are_refused():
    pixels = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="image encoding 'mono8' is not supported; use one of rgb8, bgr8"):
        ros2_node.frame_from_image(image(pixels, "mono8"))
    short = image(pixels, "rgb8")
    short.data = short.data[:-1]
    with pytest.raises(ValueError, match="needs 48 bytes, got 47"):
        ros2_node.frame_from_image(short)


def test_audio_messages_become_float32_samples():
    msg = SimpleNamespace(data=array.array("f", [0.0, 0.5, -0.25]))
    samples = ros2_node.samples_from_audio(msg)
    assert samples.dtype == np.float32 and samples.tolist() == [0.0, 0.5, -0.25]


def test_decisions_are_published_as_json():
    assert json.loads(ros2_node.decision_json(Decision("red", 0.98765, 1.23456))) == {
        "label": "red",
        "score": 0.9877,
        "latency_ms": 1.235,
    }
    assert json.loads(ros2_node.decision_json(Decision(None, float("nan"), 1.0)))["score"] is None


def test_rate_parameter_takes_integers_and_refuses_what_no_timer_can_run():
    """``-p rate_hz:=20`` is an INTEGER override: rclpy refused it for a parameter declared with 20.0."""
    assert ros2_node.rate_parameter(20) == 20.0 and ros2_node.rate_parameter(2.5) == 2.5
    for bad in (0, -1.0, float("inf"), float("nan"), True, "fast"):
        with pytest.raises(MmexportError, match="parameter rate_hz must be a number > 0"):
            ros2_node.rate_parameter(bad)
