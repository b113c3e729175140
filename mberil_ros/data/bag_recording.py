"""Write received (already serialized) ROS 2 messages into a rosbag2 through rosbags.

The recorder node hands over the raw CDR bytes it received (docs/ros.md: rclpy's own
serialize_message pads some messages in a way rosbags rejects), so nothing is re-encoded.
Each connection stores its message definition and RIHS01 type hash, so `ros2 bag info/play`
accept the files on a ROS machine.
"""

from __future__ import annotations

from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from mberil_ros.errors import UserError

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagRecording:
    """An open rosbag2 being written; close() makes it readable (metadata.yaml, index)."""

    def __init__(
        self, path: str | Path, storage: str = "mcap", distro: str = "ROS2_KILTED"
    ) -> None:
        if storage not in STORAGES:
            raise UserError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise UserError(f"{self.path}: output bag already exists")
        self.typestore = get_typestore(getattr(Stores, distro))
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Register a topic; ``msgtype`` like 'sensor_msgs/msg/JointState'."""
        if topic in self._connections:
            return
        if msgtype not in self.typestore.fielddefs:
            raise UserError(f"topic {topic}: message type {msgtype} is unknown to the typestore")
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=self.typestore
        )
        self.counts[topic] = 0

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        self._writer.write(self._connections[topic], timestamp_ns, data)
        self.counts[topic] += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> BagRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
