"""recorder_node: record configured topics into a rosbag2 (MCAP default, sqlite3 option).

Subscriptions are raw (the bytes are written as received) and created as soon as a topic's
publisher is discovered, with the publisher's durability so latched task topics are not
missed. Ctrl-C / SIGTERM close the bag, leaving it readable.

    ros2 run mberil_ros recorder_node --ros-args -p output:=demos/bag_000 -p storage:=mcap
"""

from __future__ import annotations

import importlib
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from mberil_ros.data.bag_recording import BagRecording
from mberil_ros.errors import UserError

DEFAULT_TOPICS = [
    "/joint_states",
    "/forward_position_controller/commands",
    "/joint_trajectory_controller/joint_trajectory",
    "/task/goal",
    "/task/obstacles",
    "/task/episode",
]


def message_class(msgtype: str) -> type:
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder_node")
        self.declare_parameter("output", "")
        self.declare_parameter("storage", "mcap")
        self.declare_parameter("topics", DEFAULT_TOPICS)
        self.declare_parameter("distro", "ROS2_KILTED")
        self.declare_parameter("discovery_period", 0.2)  # s, wall time

        output = self.get_parameter("output").value
        if not output:
            raise UserError("parameter 'output' (bag folder to write) is required")
        self.topics: list[str] = list(self.get_parameter("topics").value)
        self.bag = BagRecording(
            output, self.get_parameter("storage").value, self.get_parameter("distro").value
        )
        self._recorded: dict[str, object] = {}
        # A wall-clock timer: discovery must work before the first /clock message arrives.
        from rclpy.clock import Clock, ClockType

        self._discovery_timer = self.create_timer(
            self.get_parameter("discovery_period").value,
            self._discover,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self.get_logger().info(f"recording {self.topics} to {output}")
        self._discover()

    def _discover(self) -> None:
        available = dict(self.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self._recorded or topic not in available:
                continue
            msgtype = available[topic][0]
            try:
                self.bag.add_topic(topic, msgtype)
                cls = message_class(msgtype)
            except (UserError, ImportError, AttributeError) as exc:
                self.get_logger().error(f"cannot record {topic} ({msgtype}): {exc}")
                self._recorded[topic] = None  # don't retry every period
                continue
            self._recorded[topic] = self.create_subscription(
                cls, topic, self._make_callback(topic), self._qos_for(topic), raw=True
            )
            self.get_logger().info(f"subscribed {topic} [{msgtype}]")

    def _qos_for(self, topic: str) -> QoSProfile:
        publishers = self.get_publishers_info_by_topic(topic)
        latched = bool(publishers) and all(
            p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers
        )
        reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
        return QoSProfile(
            depth=1000,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )

    def _make_callback(self, topic: str):
        def callback(data: bytes) -> None:
            self.bag.write(topic, self.get_clock().now().nanoseconds, data)

        return callback

    def close(self) -> None:
        self.bag.close()
        counts = ", ".join(f"{t}: {n}" for t, n in self.bag.counts.items())
        # print, not the ROS logger: on Ctrl-C the context is already shut down here.
        print(f"recorder_node: closed {self.bag.path} ({counts or 'no messages'})", flush=True)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = RecorderNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except UserError as exc:
        print(f"recorder_node: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
