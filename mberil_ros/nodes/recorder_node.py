"""recorder_node: record configured topics into a rosbag2 (MCAP default, sqlite3 option).

Subscriptions are raw (the bytes are written as received) and created as soon as a topic's
publisher is discovered, with the publisher's durability so latched task topics are not
missed. Ctrl-C / SIGTERM close the bag, leaving it complete. Every ``flush_period`` what was
received is put on disk (an MCAP chunk, an sqlite3 commit; fsynced), so a recorder that is
killed (SIGKILL, OOM killer, power cut) loses only the last moments: `mberil convert` and
`mberil bag reindex` read the rest back (data/bag_recovery.py). ``max_bag_duration`` and
``max_bag_size`` split the recording into files as `ros2 bag record` does.

Timestamps (parameter `timestamps`):
- `source` (default): the time the publisher sent the message. With use_sim_time, that send
  time is mapped to the sim time of the latest /clock sent before it (see
  mberil_ros/data/sim_time_stamps.py), which keeps each command with the state it answered.
- `receive`: the node clock when the message arrived (what `ros2 bag record` does).

    ros2 run mberil_ros recorder_node --ros-args -p output:=demos/bag_000 -p storage:=mcap
"""

from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg

from mberil_ros.data.bag_recording import BagRecording
from mberil_ros.data.bag_settings import BagSplitting
from mberil_ros.data.sim_time_stamps import SimTimeStamper
from mberil_ros.errors import UserError
from mberil_ros.nodes import spinning
from mberil_ros.settings import setting, setting_of
from mberil_ros.sim.spaces import TOPICS

# what a demonstration dataset is converted from (/task/layout is the sim's own debug copy)
DEFAULT_TOPICS = [TOPICS[role] for role in ("joint_states", "commands", "trajectory", "goal",
                                            "goal_left", "obstacles", "episode")]

@dataclass
class RecorderNodeParameters:
    output: str = setting("", "bag folder to write (must not exist; required)")
    storage: str = setting("mcap", "mcap | sqlite3")
    topics: list[str] = setting(DEFAULT_TOPICS, "topics to record (each once a publisher "
                                "exists)")
    distro: str = setting("ROS2_KILTED", "rosbags typestore for message definitions and type "
                          "hashes")
    timestamps: str = setting("source", "source (the sim time the message was sent at) | "
                              "receive")
    discovery_period: float = setting(0.2, "s (wall) between looks for the configured topics")
    flush_period: float = setting(0.5, "s (wall) between writes of what was received to disk "
                                  "(an MCAP chunk, an sqlite3 commit): a killed recorder loses "
                                  "at most about this much")
    max_bag_duration: float = setting_of(BagSplitting, "max_bag_duration")
    max_bag_size: int = setting_of(BagSplitting, "max_bag_size")


def message_class(msgtype: str) -> type:
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder_node")
        p = spinning.declare_parameters(self, RecorderNodeParameters)
        if not p["output"]:
            raise UserError("parameter 'output' (bag folder to write) is required")
        if p["timestamps"] not in ("source", "receive"):
            raise UserError(f"parameter 'timestamps' must be source or receive, "
                            f"got {p['timestamps']!r}")
        if not p["flush_period"] > 0:
            raise UserError(f"parameter 'flush_period' must be > 0, got {p['flush_period']}")
        self.topics: list[str] = list(p["topics"])
        self.bag = BagRecording(p["output"], p["storage"], p["distro"],
                                max_bag_duration=p["max_bag_duration"],
                                max_bag_size=p["max_bag_size"])
        self.stamp_mode = p["timestamps"]
        sim_time = self.get_parameter("use_sim_time").value
        self.stamper = SimTimeStamper() if self.stamp_mode == "source" and sim_time else None
        self._recorded: dict[str, object] = {}
        self._clock_subscription = None
        # Wall-clock timers: discovery must work before the first /clock message arrives.
        wall = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(p["discovery_period"], self._discover, clock=wall)
        if self.stamper is not None:
            self.create_timer(0.1, self._expire, clock=wall)
        self.create_timer(p["flush_period"], self.bag.flush, clock=wall)
        self.get_logger().info(f"recording {self.topics} to {p['output']} "
                               f"({self.stamp_mode} timestamps)")
        self._discover()

    def _discover(self) -> None:
        available = dict(self.get_topic_names_and_types())
        clock = TOPICS["clock"]
        if self.stamper is not None and self._clock_subscription is None and clock in available:
            self._clock_subscription = self.create_subscription(
                ClockMsg, clock, self._on_clock, self._qos_for(clock))
        for topic in self.topics:
            # Subscribe once a publisher exists (as `ros2 bag record` does): its QoS decides
            # ours, and a reader made for a topic only other readers use was seen to miss a
            # publisher that joined later.
            if topic in self._recorded or topic not in available:
                continue
            if not self.count_publishers(topic):
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
        def callback(data: bytes, info) -> None:
            if self.stamper is not None:
                self._write(self.stamper.push(topic, info["source_timestamp"], data))
            elif self.stamp_mode == "source":
                self.bag.write(topic, info["source_timestamp"], data)
            else:
                self.bag.write(topic, self.get_clock().now().nanoseconds, data)

        return callback

    def _on_clock(self, msg: ClockMsg, info) -> None:
        sim_ns = msg.clock.sec * 1_000_000_000 + msg.clock.nanosec
        self._write(self.stamper.on_clock(info["source_timestamp"], sim_ns))

    def _expire(self) -> None:
        self._write(self.stamper.expire(time.time_ns()))

    def _write(self, releases) -> None:
        for topic, stamp, data in releases:
            self.bag.write(topic, stamp, data)

    def close(self) -> None:
        if self.stamper is not None:
            self._write(self.stamper.flush())
        self.bag.close()
        counts = ", ".join(f"{t}: {n}" for t, n in self.bag.counts.items())
        # print, not the ROS logger: a summary for the terminal and the record logs.
        print(f"recorder_node: closed {self.bag.path} ({counts or 'no messages'})", flush=True)


def main(args: list[str] | None = None) -> int:
    return spinning.run(RecorderNode, "recorder_node", args, cleanup=RecorderNode.close)


if __name__ == "__main__":
    sys.exit(main())
