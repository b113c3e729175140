"""rosbag2's metadata.yaml (format version 9): what the recorder writes when it closes a bag
and what recovery (bag_recovery.py) rebuilds from the storage files, as `ros2 bag reindex`
does: per topic its type, type hash, QoS and message count; per file its time range and
message count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

VERSION = 9


@dataclass(frozen=True)
class Topic:
    name: str
    type: str
    type_description_hash: str = ""
    # as rosbag2 stores them: a list of QoS mappings (version 9), empty when unknown
    offered_qos_profiles: tuple = ()
    serialization_format: str = "cdr"

    @property
    def key(self) -> tuple[str, str]:
        return self.name, self.type


@dataclass
class FileStats:
    """One storage file: its name inside the bag folder and what it holds."""

    path: str
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # Topic.key -> messages
    start_ns: int | None = None
    end_ns: int | None = None

    @property
    def messages(self) -> int:
        return sum(self.counts.values())

    def add(self, key: tuple[str, str], stamp_ns: int, count: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + count
        self.start_ns = stamp_ns if self.start_ns is None else min(self.start_ns, stamp_ns)
        self.end_ns = stamp_ns if self.end_ns is None else max(self.end_ns, stamp_ns)


def _time(start: int | None, end: int | None) -> dict[str, Any]:
    return {"starting_time": {"nanoseconds_since_epoch": start or 0},
            "duration": {"nanoseconds": (end - start) if start is not None else 0}}


def bag_information(storage: str, topics: list[Topic], files: list[FileStats], *,
                    ros_distro: str = "", custom_data: dict[str, str] | None = None
                    ) -> dict[str, Any]:
    """The ``rosbag2_bagfile_information`` mapping of a bag made of ``files`` (in order)."""
    starts = [f.start_ns for f in files if f.start_ns is not None]
    ends = [f.end_ns for f in files if f.end_ns is not None]
    start, end = (min(starts), max(ends)) if starts else (None, None)
    totals: dict[tuple[str, str], int] = {}
    for f in files:
        for key, count in f.counts.items():
            totals[key] = totals.get(key, 0) + count
    return {
        "version": VERSION,
        "storage_identifier": storage,
        "relative_file_paths": [f.path for f in files],
        **_time(start, end),
        "message_count": sum(f.messages for f in files),
        "topics_with_message_count": [
            {"topic_metadata": {"name": t.name, "type": t.type,
                                "serialization_format": t.serialization_format,
                                "offered_qos_profiles": list(t.offered_qos_profiles),
                                "type_description_hash": t.type_description_hash},
             "message_count": totals.get(t.key, 0)}
            for t in topics],
        "compression_format": "",
        "compression_mode": "",
        "files": [{"path": f.path, **_time(f.start_ns, f.end_ns), "message_count": f.messages}
                  for f in files],
        "custom_data": custom_data or None,
        "ros_distro": ros_distro,
    }


def dump(information: dict[str, Any]) -> str:
    return yaml.safe_dump(information, sort_keys=False)


def write_metadata(folder: Path, information: dict[str, Any]) -> Path:
    """Write FOLDER/metadata.yaml whole or not at all (temp file, fsync, rename)."""
    path = folder / "metadata.yaml"
    tmp = folder / ".metadata.yaml.tmp"
    with tmp.open("w") as f:
        f.write(dump({"rosbag2_bagfile_information": information}))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def read_metadata(folder: Path) -> dict[str, Any] | None:
    """The bagfile information of FOLDER/metadata.yaml; None when missing or unreadable."""
    try:
        data = yaml.safe_load((folder / "metadata.yaml").read_text())
        info = data["rosbag2_bagfile_information"]
    except (OSError, yaml.YAMLError, TypeError, KeyError):
        return None
    return info if isinstance(info, dict) else None


def qos_text(profiles: tuple) -> str:
    """QoS profiles as the YAML string MCAP channels and sqlite3 topics store."""
    return yaml.safe_dump(list(profiles), default_flow_style=True).strip()


def parse_qos_text(text: str) -> tuple:
    try:
        value = yaml.safe_load(text) if text else []
    except yaml.YAMLError:
        return ()
    return tuple(value) if isinstance(value, list) else ()
