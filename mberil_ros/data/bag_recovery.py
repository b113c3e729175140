"""Read back a rosbag2 whose recording did not end normally (killed recorder, power cut,
full disk, a copy cut short), as `ros2 bag reindex` does, and say what was kept and cut.

- MCAP: a file without its footer/summary is read with the `mcap` library's streaming
  reader up to its last complete chunk (record whole, CRC right); those messages are
  written into a complete MCAP file. A file with its footer is used as it is.
- sqlite3: a database left with its WAL/rollback journal is opened read-write, so SQLite
  itself replays or rolls back the journal: every committed transaction is kept.
- metadata.yaml is rebuilt from what the files hold (bag_metadata.py); type hashes and QoS
  come from the files, else from an old metadata.yaml.

``recover(bag, workdir)`` builds a readable copy in ``workdir`` and never writes to the bag
(intact files are linked, not copied): what `mberil convert` uses. ``reindex(bag)`` repairs the bag
folder in place, keeping each rewritten MCAP file's original as FILE.orig.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from mberil_ros.data.bag_files import STORAGE_FILES, McapFile
from mberil_ros.data.bag_metadata import (
    FileStats,
    Topic,
    bag_information,
    parse_qos_text,
    read_metadata,
    write_metadata,
)
from mberil_ros.data.mcap_scan import mcap_complete, scan_mcap
from mberil_ros.errors import UserError

STORAGE_SUFFIXES = {kind.suffix: storage for storage, kind in STORAGE_FILES.items()}
NS = 1_000_000_000


@dataclass
class FileResult:
    stats: FileStats
    state: str  # complete | recovered | empty
    detail: str = ""  # how it was read (recovered), why nothing was (empty)
    cut: str = ""  # what was cut off and why
    # repair in place, done once every file was read: (original, its replacement or None)
    pending: list[tuple[Path, Path | None]] = field(default_factory=list)

    def line(self) -> str:
        s = self.stats
        if self.state == "empty":
            return f"{s.path}: nothing readable ({self.detail}), left out"
        text = f"{s.path}: {self.detail or self.state}, {s.messages} messages"
        if self.state == "recovered" and s.end_ns is not None:
            text += f" up to bag time {s.end_ns / NS:.3f} s"
        return f"{text}, {self.cut}" if self.cut else text


@dataclass
class Recovery:
    path: Path
    storage: str
    reason: str  # why the bag needed it
    output: Path  # the readable bag (the bag itself after reindex)
    files: list[FileResult] = field(default_factory=list)
    topics: list[Topic] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # originals kept beside (reindex)

    @property
    def messages(self) -> int:
        return sum(f.stats.messages for f in self.files)

    def summary(self) -> str:
        """One line: why, what was read back, what was cut."""
        complete = sum(f.state == "complete" for f in self.files)
        parts = [f.line() for f in self.files if f.state != "complete"]
        parts += [f"{complete} complete file(s)"] if complete else []
        return f"{self.reason}; " + "; ".join(parts)

    def lines(self) -> list[str]:
        counts: dict[tuple[str, str], int] = {}
        for f in self.files:
            for key, n in f.stats.counts.items():
                counts[key] = counts.get(key, 0) + n
        out = [f"{self.path}: {self.reason}; {self.messages} messages recovered"]
        out += [f"  {f.line()}" for f in self.files]
        out += [f"  {t.name} [{t.type}]: {counts.get(t.key, 0)}" for t in self.topics]
        out += [f"  kept the damaged original as {name} (delete it once the bag is checked)"
                for name in self.kept]
        return out


def storage_files(folder: Path) -> list[Path]:
    """The folder's storage files in recording order: metadata.yaml's order, else by the
    split index rosbag2 appends (BAG_0, BAG_1, ..., BAG_10)."""
    found = [p for p in folder.iterdir() if p.is_file() and p.suffix in STORAGE_SUFFIXES]
    listed = (read_metadata(folder) or {}).get("relative_file_paths") or []
    order = {Path(str(name)).name: i for i, name in enumerate(listed)}

    def key(p: Path) -> tuple:
        index = re.search(r"_(\d+)$", p.stem)
        return (order.get(p.name, len(order)), int(index.group(1)) if index else -1, p.name)

    return sorted(found, key=key)


def _journals(db: Path) -> list[Path]:
    return [p for p in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-journal"))
            if p.exists()]


def _damage(file: Path) -> str | None:
    if file.suffix == ".db3":
        journals = _journals(file)
        return f"{file.name} has an open journal ({journals[0].name})" if journals else None
    return None if mcap_complete(file) else f"{file.name} has no footer: it was cut short"


def needs_recovery(path: Path) -> str | None:
    """Why ``path`` cannot be read as it is (None: it can)."""
    if path.is_dir():
        if not (path / "metadata.yaml").exists():
            return "no metadata.yaml (the recording did not end normally)"
        return next(filter(None, map(_damage, storage_files(path))), None)
    if path.suffix in STORAGE_SUFFIXES:
        return _damage(path)
    return None


def _link(src: Path, dst: Path) -> None:
    dst.symlink_to(src.resolve())


def _mcap(file: Path, dest: Path | None) -> tuple[FileResult, list[Topic]]:
    """One MCAP file; ``dest``: the folder of the readable copy, None: repair in place."""
    if mcap_complete(file):
        scan = scan_mcap(file)
        if dest is not None:
            _link(file, dest / file.name)
        return FileResult(scan.stats, "complete"), scan.topics
    target = dest / file.name if dest is not None else file.with_name(f".{file.name}.tmp")
    target.unlink(missing_ok=True)
    out = McapFile(target)
    try:
        scan = scan_mcap(file, out)
        out.close(bag_information("mcap", scan.topics, [scan.stats]))
    except BaseException:
        out.abort()
        target.unlink(missing_ok=True)
        raise
    scan.stats.path = file.name
    if not scan.stats.messages:
        target.unlink()
        # in place: moved out of the way, so the folder reads as a complete bag
        return FileResult(scan.stats, "empty", scan.cut,
                          pending=[(file, None)] if dest is None else []), []
    pending = [(file, target)] if dest is None else []
    if not scan.cut:
        return (FileResult(scan.stats, "recovered", "data complete, summary rebuilt",
                           pending=pending), scan.topics)
    cut = f"{scan.cut_bytes} bytes cut ({scan.cut})" if scan.cut_bytes else scan.cut
    return (FileResult(scan.stats, "recovered", "read to its last complete chunk", cut,
                       pending), scan.topics)


def _apply(original: Path, replacement: Path | None) -> str:
    """Keep ``original`` as ORIGINAL.orig and put ``replacement`` (if any) in its place."""
    orig = original.with_name(original.name + ".orig")
    if replacement is None:
        os.replace(original, orig)
        return orig.name
    try:  # a second name for the same bytes: the file is never missing, even for a moment
        os.link(original, orig)
    except OSError:
        shutil.copy2(original, orig)
    os.replace(replacement, original)
    return orig.name


def _sqlite(file: Path, dest: Path | None) -> tuple[FileResult, list[Topic]]:
    journals = _journals(file)
    work = file
    if dest is not None:
        work = dest / file.name
        if journals:  # SQLite replays the journal when it opens: only ever in the copy
            for p in (file, *journals):
                shutil.copy2(p, dest / p.name)
        else:
            _link(file, work)
    uri = f"file:{work}?mode=rw" if journals else f"file:{work}?immutable=1"
    stats = FileStats(file.name)
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            if not {"topics", "messages"} <= {r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")}:
                # in place: moved out of the way, so the folder reads as a complete bag
                pending = [(p, None) for p in (file, *journals)] if dest is None else []
                return FileResult(stats, "empty", "no tables: stopped before its first "
                                  "commit", pending=pending), []
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise UserError(f"{file}: corrupt sqlite3 database ({check})")
            if journals:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.execute("PRAGMA journal_mode=DELETE")
            topics = _sqlite_topics(conn)
            for topic_id, count, first, last in conn.execute(
                    "SELECT topic_id, COUNT(*), MIN(timestamp), MAX(timestamp) FROM messages "
                    "GROUP BY topic_id"):
                if topic_id not in topics:
                    raise UserError(f"{file}: messages of topic id {topic_id}, which the topics "
                                    "table lacks")
                stats.add(topics[topic_id].key, first, count - 1)
                stats.add(topics[topic_id].key, last, 1)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{file}: cannot read the sqlite3 database ({exc})") from None
    if not stats.messages:
        return FileResult(stats, "empty", "no committed message"), []
    if journals:
        return (FileResult(stats, "recovered", "journal replayed, every commit kept"),
                list(topics.values()))
    return FileResult(stats, "complete"), list(topics.values())


def _sqlite_topics(conn: sqlite3.Connection) -> dict[int, Topic]:
    have = {row[1] for row in conn.execute("PRAGMA table_info(topics)")}
    # older rosbag2 schemas lack these columns
    qos = "offered_qos_profiles" if "offered_qos_profiles" in have else "''"
    digest = "type_description_hash" if "type_description_hash" in have else "''"
    return {topic_id: Topic(name, kind, hash_value or "", parse_qos_text(qos_value or ""), fmt)
            for topic_id, name, kind, fmt, qos_value, hash_value in conn.execute(
                f"SELECT id, name, type, serialization_format, {qos}, {digest} FROM topics")}


def _merge_topics(found: list[list[Topic]], old: dict | None) -> list[Topic]:
    """Each topic once, in first-seen order; a missing type hash from the old metadata."""
    hashes = {}
    for entry in (old or {}).get("topics_with_message_count") or []:
        meta = entry.get("topic_metadata") or {}
        hashes[(meta.get("name"), meta.get("type"))] = meta.get("type_description_hash") or ""
    topics: dict[tuple[str, str], Topic] = {}
    for topic in (t for file_topics in found for t in file_topics):
        if topic.key not in topics:
            if not topic.type_description_hash and hashes.get(topic.key):
                topic = Topic(topic.name, topic.type, hashes[topic.key],
                              topic.offered_qos_profiles, topic.serialization_format)
            topics[topic.key] = topic
    return list(topics.values())


def _run(path: Path, dest: Path | None) -> Recovery:
    """The bag folder ``path`` read file by file into ``dest`` (None: in place)."""
    reason = needs_recovery(path) or "complete"
    files = storage_files(path)
    kinds = {STORAGE_SUFFIXES[f.suffix] for f in files}
    if not files:
        raise UserError(f"{path}: no .mcap or .db3 file (and {reason}): not a rosbag2 folder")
    if len(kinds) > 1:
        raise UserError(f"{path}: holds both .mcap and .db3 files; one storage per bag")
    storage = kinds.pop()
    old = read_metadata(path)
    recovery = Recovery(path, storage, reason, dest if dest is not None else path)
    found = []
    try:
        for file in files:
            result, topics = (_mcap if storage == "mcap" else _sqlite)(file, dest)
            recovery.files.append(result)
            found.append(topics)
        if not recovery.messages:
            raise UserError(f"{path}: nothing to recover ({reason}): "
                            + "; ".join(f.line() for f in recovery.files))
        changes = [change for result in recovery.files for change in result.pending]
        for original, _ in changes:  # refuse before changing anything
            orig = original.with_name(original.name + ".orig")
            if orig.exists():
                raise UserError(f"{orig}: exists already (an earlier reindex?); move it away")
    except BaseException:  # in place: the bag stays as it was
        for result in recovery.files:
            for _, replacement in result.pending:
                if replacement is not None:
                    replacement.unlink(missing_ok=True)
        raise
    recovery.kept = [_apply(*change) for change in changes]
    recovery.topics = _merge_topics(found, old)
    kept = [f.stats for f in recovery.files if f.state != "empty"]
    information = bag_information(storage, recovery.topics, kept,
                                  ros_distro=str((old or {}).get("ros_distro") or ""),
                                  custom_data=(old or {}).get("custom_data") or None)
    write_metadata(recovery.output, information)
    return recovery


def recover(path: Path, workdir: Path) -> Recovery:
    """A readable copy of the bag ``path`` (folder or single file) at WORKDIR/NAME; ``path``
    itself is only read. ``workdir`` must exist."""
    reason = needs_recovery(path) or "complete"
    out = workdir / path.resolve().name  # `.` has no name of its own
    if path.is_dir():
        out.mkdir()
        return _run(path, out)
    recovery = Recovery(path, STORAGE_SUFFIXES[path.suffix], reason, out)
    if path.suffix == ".mcap":
        result, topics = _mcap(path, workdir)
    else:
        result, topics = _sqlite(path, workdir)
    recovery.files.append(result)
    recovery.topics = topics
    if not recovery.messages:
        raise UserError(f"{path}: nothing to recover ({reason}): {result.line()}")
    return recovery


def reindex(path: Path) -> Recovery | None:
    """Repair the bag folder ``path`` in place: complete MCAP files, replayed sqlite3
    journals, a rebuilt metadata.yaml. None (and nothing touched) when it reads as it is."""
    if not path.is_dir():
        raise UserError(f"{path}: not a bag folder (reindex repairs rosbag2 folders; "
                        "`mberil convert` reads a single damaged file as it is)")
    if needs_recovery(path) is None:
        return None
    return _run(path, None)
