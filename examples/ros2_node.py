"""A minimal ROS 2 node (rclpy) around robot_core: camera, command and audio in, decisions out.

    source /opt/ros/<distro>/setup.bash                 # rclpy, sensor_msgs, std_msgs
    mmexport to-onnx -o model.onnx                       # in an environment with mmexport[cpu]
    python examples/ros2_node.py --ros-args -p model:=model.onnx -p rate_hz:=20.0

Subscribes (relative names; remap with ``--ros-args -r image:=/camera/image_raw``):

- ``image``: ``sensor_msgs/Image``, encoding ``rgb8`` or ``bgr8``, within the model's height and
  width range (sensor-data QoS: best effort, newest frames);
- ``command``: ``std_msgs/String``, the text command (default: parameter ``command``);
- ``audio``: ``std_msgs/Float32MultiArray``, mono samples at the model's sample rate in chunks of
  any length; the node keeps the last second (sensor-data QoS).

Publishes ``decision`` (``std_msgs/String``: JSON ``{"label", "score", "latency_ms"}``) from a
timer at ``rate_hz``, on the newest frame, the command and the last second of audio; nothing
until a first frame has arrived. Inference latency (p50/p99 over the last second) goes to the
node's log once a second. Parameters: ``model`` (path), ``rate_hz`` (20.0), ``threads``
(onnxruntime intra-op threads; 0: its default), ``command``.

Callbacks run one at a time under ``rclpy.spin`` (a single-threaded executor), so the node's
state needs no lock. The Session itself may be called from several threads (see docs/embedding.md,
"Embedding in robot software") if you move to a multi-threaded executor; the newest-frame state
here would then need a lock.

Not run in mmexport's tests: rclpy ships with ROS 2 distributions, not on PyPI, and cannot be
installed in the project's test environment. The rclpy names used here (``rclpy.init``,
``rclpy.spin``, ``rclpy.ok``, ``rclpy.shutdown``, ``Node.declare_parameter``,
``Node.create_subscription``, ``Node.create_publisher``, ``Node.create_timer``,
``rclpy.qos.qos_profile_sensor_data``, the logger's ``throttle_duration_sec``,
``rcl_interfaces.msg.ParameterDescriptor(dynamic_typing=True)``, without which rclpy refuses an
override of another type than the default's) were checked against rclpy's source, not executed.
What is tested (tests/examples): that this module imports without rclpy, that running it without
rclpy prints one error line and exits 1, the message conversions and the rate parameter below,
and the robot_core the node wraps.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
from robot_core import Decision, DecisionCore, LatencyLog

from mmexport.core.errors import MmexportError
from mmexport.runtime import Session

ENCODINGS = ("rgb8", "bgr8")


def frame_from_image(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/Image`` (rgb8 or bgr8) as an HxWx3 uint8 RGB array (a copy; rows may be padded)."""
    encoding = str(msg.encoding).lower()
    if encoding not in ENCODINGS:
        raise ValueError(
            f"image encoding {msg.encoding!r} is not supported; use one of {', '.join(ENCODINGS)}"
        )
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if step < 3 * width or data.size < step * height:
        raise ValueError(
            f"image of {height}x{width} with step {step} needs {step * height} bytes, got {data.size}"
        )
    frame = data[: step * height].reshape(height, step)[:, : 3 * width].reshape(height, width, 3)
    return np.ascontiguousarray(frame[..., ::-1] if encoding == "bgr8" else frame)


def rate_parameter(value: Any) -> float:
    """The ``rate_hz`` parameter as a timer rate; declared with dynamic typing, so 20 and 20.0 both do."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise MmexportError(f"parameter rate_hz must be a number > 0, got {value!r}")
    return float(value)


def samples_from_audio(msg: Any) -> np.ndarray:
    """A ``std_msgs/Float32MultiArray`` of mono samples as a 1-D float32 array."""
    return np.asarray(msg.data, dtype=np.float32).reshape(-1)


def decision_json(decision: Decision) -> str:
    """What the ``decision`` topic carries: label (null when the output was not finite), score, latency."""
    score = None if np.isnan(decision.score) else round(decision.score, 4)
    return json.dumps({"label": decision.label, "score": score, "latency_ms": round(decision.latency_ms, 3)})


def main(argv: list[str] | None = None) -> int:
    """Run the node until Ctrl-C; 1 with one error line when ROS 2 or the model is missing."""
    try:
        import rclpy
        from rcl_interfaces.msg import ParameterDescriptor
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float32MultiArray, String
    except ImportError as e:
        print(
            f"error: ros2_node.py needs ROS 2's Python packages ({e.name or e} is not installed); "
            "source /opt/ros/<distro>/setup.bash first (rclpy does not come from pip)",
            file=sys.stderr,
        )
        return 1

    class DecisionNode(Node):
        def __init__(self) -> None:
            super().__init__("mmexport_decision")
            model = str(self.declare_parameter("model", "model.onnx").value)
            any_number = ParameterDescriptor(dynamic_typing=True)  # -p rate_hz:=20 is an INTEGER
            rate = rate_parameter(self.declare_parameter("rate_hz", 20.0, any_number).value)
            threads = int(self.declare_parameter("threads", 0).value)
            command = str(self.declare_parameter("command", "what colour is the object").value)
            session = Session(model, threads=threads or None, spin=False)
            latency = LatencyLog("inference", window=max(1, round(rate)), log=self.get_logger().info)
            self.core = DecisionCore(session, command, latency=latency)
            self.create_subscription(Image, "image", self.on_image, qos_profile_sensor_data)
            self.create_subscription(String, "command", self.on_command, 10)
            self.create_subscription(Float32MultiArray, "audio", self.on_audio, qos_profile_sensor_data)
            self.publisher = self.create_publisher(String, "decision", 10)
            self.create_timer(1.0 / rate, self.on_tick)
            self.get_logger().info(f"{model}: {session.describe()['provider']}, deciding at {rate} Hz")

        def on_image(self, msg: Any) -> None:
            try:
                self.core.set_frame(frame_from_image(msg))
            except ValueError as e:
                self.get_logger().error(str(e), throttle_duration_sec=5.0)

        def on_command(self, msg: Any) -> None:
            self.core.set_command(str(msg.data))

        def on_audio(self, msg: Any) -> None:
            try:
                self.core.push_audio(samples_from_audio(msg))
            except MmexportError as e:
                self.get_logger().error(str(e), throttle_duration_sec=5.0)

        def on_tick(self) -> None:
            try:
                decision = self.core.tick()
            except MmexportError as e:  # a frame or command the model cannot take: say so, keep running
                self.get_logger().error(str(e), throttle_duration_sec=5.0)
                return
            if decision is not None:
                self.publisher.publish(String(data=decision_json(decision)))

    rclpy.init(args=argv)
    try:
        node = DecisionNode()
    except MmexportError as e:
        print(f"error: {e}", file=sys.stderr)
        rclpy.shutdown()
        return 1
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
