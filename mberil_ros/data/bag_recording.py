"""Write received (already serialized) ROS 2 messages into a rosbag2 folder, crash-safe.

The recorder node hands over the raw CDR bytes it received (docs/ros.md: rclpy's own
serialize_message pads some messages in a way rosbags rejects), so nothing is re-encoded.
Each connection stores its message definition and RIHS01 type hash (from the rosbags type
store), so `ros2 bag info/play` accept the files on a ROS machine.

Storage files are named as rosbag2 names them (BAG/BAG_0.mcap, BAG_1.mcap, ...): with
``max_bag_duration`` or ``max_bag_size`` a file is closed (summary and footer written) and
the next one opened, as `ros2 bag record` splits. ``flush()`` (the node calls it on a timer)
puts what was received on disk; ``close()`` completes the last file and writes
metadata.yaml. A recording killed before that is read back by bag_recovery.py.

Messages do not arrive in timestamp order across topics (each topic is its own DDS queue,
and the recorder stamps with send times), and readers take a bag's files one after the
other. So at a split the old file stays open for ``DRAIN_S`` more: messages stamped before
the first one of the new file still go into it, and every file holds one time range.
"""

from __future__ import annotations

import time
from pathlib import Path

from rosbags.typesys import Stores, get_typestore

from mberil_ros.data.bag_files import STORAGE_FILES
from mberil_ros.data.bag_metadata import FileStats, Topic, bag_information, write_metadata
from mberil_ros.errors import UserError

NS = 1_000_000_000
# wall s a split-off file still takes late messages: more than the recorder's sim-time
# stamper holds one back (0.5 s, data/sim_time_stamps.py)
DRAIN_S = 1.0


class BagRecording:
    """An open rosbag2 being written; close() makes it complete (metadata.yaml)."""

    def __init__(self, path: str | Path, storage: str = "mcap", distro: str = "ROS2_KILTED",
                 *, max_bag_duration: float = 0.0, max_bag_size: int = 0) -> None:
        if storage not in STORAGE_FILES:
            raise UserError(f"storage must be one of {sorted(STORAGE_FILES)}, got {storage!r}")
        if not max_bag_duration >= 0 or not max_bag_size >= 0:
            raise UserError(f"max_bag_duration and max_bag_size must be >= 0 (0: no split), "
                            f"got {max_bag_duration} and {max_bag_size}")
        if not hasattr(Stores, distro):
            raise UserError(f"unknown distro {distro!r} (a rosbags type store, e.g. ROS2_KILTED)")
        self.path = Path(path)
        if self.path.exists():
            raise UserError(f"{self.path}: output bag already exists")
        self.storage = storage
        self.typestore = get_typestore(getattr(Stores, distro))
        self.ros_distro = distro.lower().removeprefix("ros2_")
        self._max_ns = int(max_bag_duration * NS)
        self._max_size = max_bag_size
        self._topics: dict[str, Topic] = {}
        self._definitions: dict[str, tuple[str, str]] = {}  # type -> (encoding, text)
        self._closed: list[FileStats] = []
        self._opened = 0
        # the file split off last, while it still takes messages stamped before `_boundary`
        self._draining = None
        self._boundary = 0
        self._drain_until = 0.0
        self.counts: dict[str, int] = {}
        self.path.mkdir(parents=True)
        self._file = self._open_file()

    @property
    def files(self) -> list[str]:
        """Storage file names so far, in order."""
        return [f"{self.path.name}_{i}{STORAGE_FILES[self.storage].suffix}"
                for i in range(self._opened)]

    def _open_file(self):  # noqa: ANN202 - McapFile | Sqlite3File
        kind = STORAGE_FILES[self.storage]
        file = kind(self.path / f"{self.path.name}_{self._opened}{kind.suffix}")
        self._opened += 1
        for topic in self._topics.values():  # every file names every topic, as rosbag2's do
            file.add_topic(topic, *self._definitions[topic.type])
        return file

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Register a topic; ``msgtype`` like 'sensor_msgs/msg/JointState'."""
        if topic in self._topics:
            return
        if msgtype not in self.typestore.fielddefs:
            raise UserError(f"topic {topic}: message type {msgtype} is unknown to the typestore")
        if msgtype not in self._definitions:
            text, _ = self.typestore.generate_msgdef(msgtype, ros_version=2)
            idl = text.startswith("=" * 80 + "\nIDL: ")
            self._definitions[msgtype] = ("ros2idl" if idl else "ros2msg", text)
        entry = Topic(topic, msgtype, self.typestore.hash_rihs01(msgtype))
        for file in filter(None, (self._draining, self._file)):
            file.add_topic(entry, *self._definitions[msgtype])
        self._topics[topic] = entry
        self.counts[topic] = 0

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        key = self._topics[topic].key
        self.counts[topic] += 1
        if self._draining is not None and timestamp_ns < self._boundary:
            self._draining.write(key, timestamp_ns, data)  # late for the file split off
            return
        if self._split_due(timestamp_ns):
            self._finish_draining()
            self._file.flush()  # what it holds so far is on disk now, not at the next tick
            self._draining, self._boundary = self._file, timestamp_ns
            self._drain_until = time.monotonic() + DRAIN_S
            self._file = self._open_file()
        self._file.write(key, timestamp_ns, data)

    def _split_due(self, timestamp_ns: int) -> bool:
        start = self._file.stats.start_ns
        if start is None:  # never leave a file empty
            return False
        return bool((self._max_ns and timestamp_ns - start >= self._max_ns)
                    or (self._max_size and self._file.size() >= self._max_size))

    def flush(self) -> None:
        """Everything written so far onto disk (see bag_files.py); a split-off file is
        closed once it stopped taking late messages."""
        if self._draining is not None:
            if time.monotonic() >= self._drain_until:
                self._finish_draining()
            else:
                self._draining.flush()
        if self._file is not None:
            self._file.flush()

    def _information(self, files: list[FileStats]) -> dict:
        return bag_information(self.storage, list(self._topics.values()), files,
                               ros_distro=self.ros_distro)

    def _close(self, file) -> None:  # noqa: ANN001 - McapFile | Sqlite3File
        file.close(self._information([*self._closed, file.stats]))
        self._closed.append(file.stats)

    def _finish_draining(self) -> None:
        if self._draining is not None:
            self._close(self._draining)
            self._draining = None

    def close(self) -> None:
        if self._file is not None:
            self._finish_draining()
            self._close(self._file)
            self._file = None
            write_metadata(self.path, self._information(self._closed))

    def __enter__(self) -> BagRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
