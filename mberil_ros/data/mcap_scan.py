"""What a rosbag2 MCAP file holds, read with the `mcap` library: from its summary when the
file is complete, else record by record up to the last complete chunk (optionally copying
those messages into a new file). A record cut short, a chunk whose CRC does not match or a
message of an unknown channel ends the readable part; nothing after it is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mcap.data_stream import ReadDataStream
from mcap.exceptions import EndOfFile, RecordLengthLimitExceeded
from mcap.reader import make_reader
from mcap.records import Channel, Chunk, DataEnd, Header, Message, Schema
from mcap.stream_reader import CRCValidationError, StreamReader, breakup_chunk, read_magic
from mcap.summary import Summary

from mberil_ros.data.bag_metadata import FileStats, Topic, parse_qos_text
from mberil_ros.errors import UserError


@dataclass
class Scan:
    stats: FileStats
    topics: list[Topic] = field(default_factory=list)
    cut: str = ""  # why reading stopped before the end ("" when it did not)
    cut_bytes: int = 0  # bytes after the last usable record


def _closed_summary(path: Path) -> tuple[bool, Summary | None]:
    """(closed, summary): closed when the file ends in a readable footer (and summary)."""
    try:
        with path.open("rb") as f:
            f.seek(-8, 2)
            read_magic(ReadDataStream(f))
            f.seek(0)
            return True, make_reader(f).get_summary()
    except Exception:  # noqa: BLE001 - any failure to read the end means: not closed
        return False, None


def mcap_complete(path: Path) -> bool:
    """True when the file ends in a readable footer (and summary): it was closed."""
    return _closed_summary(path)[0]


def _topic(channel: Channel, schemas: dict[int, Schema], where: Path) -> Topic:
    schema = schemas.get(channel.schema_id)
    if schema is None:
        raise UserError(f"{where}: channel {channel.topic} has no schema: not a rosbag2 MCAP")
    return Topic(channel.topic, schema.name, channel.metadata.get("topic_type_hash", ""),
                 parse_qos_text(channel.metadata.get("offered_qos_profiles", "")),
                 channel.message_encoding)


def _from_summary(path: Path, summary: Summary | None) -> Scan | None:
    if summary is None or summary.statistics is None:
        return None
    stats = FileStats(path.name)
    topics = {cid: _topic(c, summary.schemas, path) for cid, c in summary.channels.items()}
    counts = summary.statistics.channel_message_counts
    for cid, topic in topics.items():
        if counts.get(cid):
            stats.counts[topic.key] = stats.counts.get(topic.key, 0) + counts[cid]
    if summary.statistics.message_count:
        stats.start_ns = summary.statistics.message_start_time
        stats.end_ns = summary.statistics.message_end_time
    return Scan(stats, list({t.key: t for t in topics.values()}.values()))


def _why(exc: BaseException, good: int, size: int) -> str:
    if size == 0:
        return "an empty file"
    if good == 0:
        return "not an MCAP file, or cut inside its header"
    if isinstance(exc, EndOfFile):
        return "the file ends before its summary and footer" if good == size else \
            "the file ends inside a record"
    if isinstance(exc, RecordLengthLimitExceeded):
        return "a record runs past the end of the file"
    if isinstance(exc, CRCValidationError):
        return "a chunk whose CRC does not match"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:120] if text else 'no detail'}"


class _Copy:
    """The records read so far, and the file they are copied into (if any)."""

    def __init__(self, path: Path, out) -> None:  # noqa: ANN001 - McapFile | None
        self.path, self.out = path, out
        self.stats = FileStats(path.name)
        self.schemas: dict[int, Schema] = {}
        self.channels: dict[int, Topic] = {}
        self.topics: dict[tuple[str, str], Topic] = {}

    def check(self, records: list) -> None:
        """Raise ValueError unless every message's channel is known by then."""
        channels = set(self.channels)
        for r in records:
            if isinstance(r, Channel):
                channels.add(r.id)
            elif isinstance(r, Message) and r.channel_id not in channels:
                raise ValueError(f"a message of unknown channel {r.channel_id}")

    def apply(self, record: object) -> None:
        if isinstance(record, Schema):
            self.schemas[record.id] = record
        elif isinstance(record, Channel):
            topic = _topic(record, self.schemas, self.path)
            self.channels[record.id] = topic
            if topic.key not in self.topics:
                self.topics[topic.key] = topic
                if self.out is not None:
                    schema = self.schemas[record.schema_id]
                    self.out.add_topic(topic, schema.encoding, schema.data.decode())
        elif isinstance(record, Message):
            key = self.channels[record.channel_id].key
            if self.out is not None:
                self.out.write(key, record.log_time, record.data, record.publish_time)
            else:
                self.stats.add(key, record.log_time)


def scan_mcap(path: Path, out=None) -> Scan:  # noqa: ANN001 - out: McapFile | None
    """Everything readable in ``path``; its messages are copied into ``out`` when given
    (whose stats then count them)."""
    if out is None:
        closed, summary = _closed_summary(path)
        if closed and (scan := _from_summary(path, summary)) is not None:
            return scan
    size = path.stat().st_size
    copy = _Copy(path, out)
    good, cut = 0, ""
    with path.open("rb") as f:
        records = StreamReader(f, emit_chunks=True, record_size_limit=size).records
        while True:
            try:
                record = next(records)
                if isinstance(record, Header) and record.profile != "ros2":
                    raise UserError(f"{path}: MCAP profile {record.profile!r}, not a rosbag2 "
                                    "file (ros2)")
                inner = (breakup_chunk(record, validate_crc=True)
                         if isinstance(record, Chunk) else [record])
                copy.check(inner)
            except StopIteration:
                break
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - mcap, the decompressors and struct
                cut = _why(exc, good, size)  # each raise their own
                break
            for r in inner:
                copy.apply(r)
            good = f.tell()
            if isinstance(record, DataEnd):  # what follows is the summary, rebuilt anyway
                break
    stats = out.stats if out is not None else copy.stats
    return Scan(stats, list(copy.topics.values()), cut, size - good if cut else 0)

