"""One rosbag2 storage file being written: MCAP (through the `mcap` library) or sqlite3.

Both keep what `ros2 bag` and rosbags expect of a rosbag2 file: MCAP profile ``ros2``, each
type's message definition as a schema (``ros2msg``/``ros2idl``), channels with CDR encoding,
``offered_qos_profiles`` and ``topic_type_hash`` (RIHS01) metadata; sqlite3 with rosbag2's
schema version 4 (rosbags' table layout). ``flush()`` puts everything received so far on
disk, fsynced: the MCAP chunk in progress is closed and written, the sqlite3 transaction
committed (WAL journal). What was flushed survives the process being killed.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer

from mberil_ros import __version__
from mberil_ros.data.bag_metadata import FileStats, Topic, dump, qos_text

LIBRARY = f"mberil_ros-{__version__}"
Key = tuple[str, str]  # Topic.key


class McapFile:
    suffix = ".mcap"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stats = FileStats(path.name)
        self._stream = path.open("xb")
        self._writer = McapWriter(self._stream, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library=LIBRARY)
        self._stream.flush()  # a file killed before its first chunk still says what it is
        self._schemas: dict[str, int] = {}
        self._channels: dict[Key, int] = {}
        self._sequence: dict[Key, int] = {}

    def add_topic(self, topic: Topic, encoding: str, definition: str) -> None:
        if topic.type not in self._schemas:
            self._schemas[topic.type] = self._writer.register_schema(
                name=topic.type, encoding=encoding, data=definition.encode())
        self._channels[topic.key] = self._writer.register_channel(
            topic=topic.name, message_encoding=topic.serialization_format,
            schema_id=self._schemas[topic.type],
            metadata={"offered_qos_profiles": qos_text(topic.offered_qos_profiles),
                      "topic_type_hash": topic.type_description_hash})
        self._sequence[topic.key] = 0

    def write(self, key: Key, log_time: int, data: bytes, publish_time: int | None = None
              ) -> None:
        self._sequence[key] += 1
        self._writer.add_message(self._channels[key], log_time=log_time, data=data,
                                 publish_time=log_time if publish_time is None else publish_time,
                                 sequence=self._sequence[key])
        self.stats.add(key, log_time)

    def size(self) -> int:
        return self._stream.tell()

    def flush(self) -> None:
        self._writer.flush()  # closes the chunk in progress (a no-op without messages)
        os.fsync(self._stream.fileno())

    def close(self, information: dict[str, Any]) -> None:
        """Summary and footer: the file is complete (rosbags and `ros2 bag` read it)."""
        self._writer.add_metadata("rosbag2", {"serialized_metadata": dump(information)})
        self._writer.finish()
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._stream.close()

    def abort(self) -> None:
        self._stream.close()


class Sqlite3File:
    suffix = ".db3"

    def __init__(self, path: Path) -> None:
        if path.exists():
            raise FileExistsError(path)
        self.path = path
        self.stats = FileStats(path.name)
        self._conn = sqlite3.connect(path)
        # WAL: a commit appends to the journal, so one per flush stays cheap; FULL: each
        # commit is fsynced (a power cut keeps what was committed).
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(Sqlite3Writer.SQLITE_SCHEMA)
        self._conn.commit()
        self._types: set[str] = set()
        self._ids: dict[Key, int] = {}
        self._size = 0

    def add_topic(self, topic: Topic, encoding: str, definition: str) -> None:
        if topic.type not in self._types:
            self._conn.execute(
                "INSERT INTO message_definitions (topic_type, encoding, "
                "encoded_message_definition, type_description_hash) VALUES (?, ?, ?, ?)",
                (topic.type, encoding, definition, topic.type_description_hash))
            self._types.add(topic.type)
        self._ids[topic.key] = len(self._ids) + 1
        self._conn.execute("INSERT INTO topics VALUES (?, ?, ?, ?, ?, ?)",
                           (self._ids[topic.key], topic.name, topic.type,
                            topic.serialization_format, qos_text(topic.offered_qos_profiles),
                            topic.type_description_hash))

    def write(self, key: Key, log_time: int, data: bytes, publish_time: int | None = None
              ) -> None:
        self._conn.execute("INSERT INTO messages (topic_id, timestamp, data) VALUES (?, ?, ?)",
                           (self._ids[key], log_time, data))
        self.stats.add(key, log_time)

    def size(self) -> int:
        """Bytes on disk at the last flush (a stat per message would cost more than it says)."""
        return self._size

    def flush(self) -> None:
        self._conn.commit()
        wal = self.path.with_name(self.path.name + "-wal")
        self._size = self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def close(self, information: dict[str, Any]) -> None:
        self._conn.execute("INSERT INTO metadata (metadata_version, metadata) VALUES (?, ?)",
                           (information["version"], dump(information)))
        self._conn.commit()
        # back to a rollback journal: the WAL is checkpointed into the file and removed, so
        # the closed bag is one self-contained .db3 that read-only readers open
        self._conn.execute("PRAGMA journal_mode=DELETE")
        self._conn.execute("PRAGMA optimize")
        self._conn.close()

    def abort(self) -> None:
        self._conn.close()


STORAGE_FILES = {"mcap": McapFile, "sqlite3": Sqlite3File}  # bag_settings.STORAGES
