"""Recording settings shared by the recorder node's parameters and `mberil record`'s options:
the storages, and when a recording starts its next file (rosbag2's two limits). A module
without the bag writers' imports, so `mberil record` and the launch file stay light."""

from __future__ import annotations

from dataclasses import dataclass

from mberil_ros.settings import setting

STORAGES = ("mcap", "sqlite3")


@dataclass
class BagSplitting:
    max_bag_duration: float = setting(0.0, "s of bag time (sim time when recording the sim) "
                                      "per storage file, then the next one starts; 0: no split")
    max_bag_size: int = setting(0, "bytes per storage file, then the next one starts (at the "
                                "next chunk/commit); 0: no split")
