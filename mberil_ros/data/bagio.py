"""Opening bags (rosbag2 MCAP/sqlite3 directories or files, ROS 1 .bag) with rosbags.

A rosbag2 whose recording did not end normally (no metadata.yaml, an MCAP file without its
footer, an sqlite3 journal left open) is first recovered into a temporary copy
(bag_recovery.py); the bag itself is never written. Every failure of the bag itself
(missing, truncated, corrupt, wrong topic type) becomes a one-line UserError naming the file
and, where it applies, the topic.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from rosbags.highlevel import AnyReader
from rosbags.interfaces import Connection
from rosbags.typesys import Stores, get_typestore

from mberil_ros.data.bag_recovery import Recovery, needs_recovery, recover
from mberil_ros.data.mcapfast import fast_messages
from mberil_ros.errors import UserError


class Bag:
    """An open bag: the rosbags reader plus what the converter needs to know about it."""

    def __init__(self, path: Path, reader: AnyReader, recovery: Recovery | None = None) -> None:
        self.path = path
        self.reader = reader
        self.recovery = recovery  # what was read back from an interrupted recording
        self.ros1 = not reader.is2
        self.kind = "ros1" if self.ros1 else _storage_kind(path)

    def connections(self, topic: str, msgtype: str) -> list[Connection]:
        """The topic's connections; its type must be ``msgtype``."""
        conns = [c for c in self.reader.connections if c.topic == topic]
        if not conns:
            present = sorted({c.topic for c in self.reader.connections})
            raise UserError(f"{self.path}: topic {topic} not in the bag (topics: "
                            f"{', '.join(present) or 'none'})")
        for conn in conns:
            if conn.msgtype != msgtype:
                raise UserError(f"{self.path}: topic {topic} has type {conn.msgtype}, "
                                f"expected {msgtype}")
        return conns

    def deserializer(self, msgtype: str):  # noqa: ANN201 - a closure over rosbags
        store = self.reader.typestore
        if self.ros1:
            return lambda raw: store.deserialize_ros1(raw, msgtype)
        return lambda raw: store.deserialize_cdr(raw, msgtype)

    def messages(self, connections: Sequence[Connection]
                 ) -> Iterator[tuple[Connection, int, bytes]]:
        """Messages in receive-time order; a read failure becomes a UserError."""
        try:
            fast = fast_messages(self.reader, connections)
            yield from (fast if fast is not None else self.reader.messages(connections=connections))
        except GeneratorExit:
            raise
        except Exception as exc:  # noqa: BLE001 - rosbags/sqlite/zstd/struct all raise here
            raise UserError(f"{self.path}: corrupt or truncated bag while reading messages "
                            f"({type(exc).__name__}: {_one_line(exc)})") from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no detail"


def _storage_kind(path: Path) -> str:
    if path.is_file():
        return "mcap" if path.suffix == ".mcap" else "sqlite3"
    files = {p.suffix for p in path.iterdir()}
    return "mcap" if ".mcap" in files else "sqlite3"


def _default_typestore(path: Path):  # noqa: ANN202
    # Only used when a bag carries no message definitions (old sqlite3 bags).
    return get_typestore(Stores.ROS1_NOETIC if path.suffix == ".bag" else Stores.ROS2_KILTED)


@contextmanager
def open_bag(path: str | Path, scratch: Path | None = None) -> Iterator[Bag]:
    """The bag at ``path``, recovered first if it needs it (into a temporary folder in
    ``scratch``, default the system's, removed on exit)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such bag")
    with ExitStack() as stack:
        source, recovery = path, None
        if needs_recovery(path):
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix=f".{path.name}.recover-", dir=scratch)))
            try:
                recovery = recover(path, work)
            except OSError as exc:  # a full disk, a file that cannot be read: no traceback
                raise UserError(f"{path}: cannot recover the bag ({exc})") from exc
            source = recovery.output
        try:
            reader = AnyReader([source], default_typestore=_default_typestore(path))
            reader.open()
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to open is a bad bag
            raise UserError(f"{path}: cannot open bag ({type(exc).__name__}: "
                            f"{_one_line(exc)})") from exc
        stack.callback(reader.close)
        yield Bag(path, reader, recovery)


def bag_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def sha256_of(path: str | Path) -> str:
    """sha256 of a bag file; of a bag folder, over its files' relative names and contents."""
    path = Path(path)
    if path.is_file():
        return _file_sha(path)
    outer = hashlib.sha256()
    for file in bag_files(path):
        outer.update(f"{file.relative_to(path).as_posix()}\0{_file_sha(file)}\n".encode())
    return outer.hexdigest()


def _file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        # Large reads: hashlib drops the GIL for them, so hashing overlaps conversion.
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
