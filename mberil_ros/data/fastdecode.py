"""Fixed-layout decoding of the two high-rate message types, with numpy.

Deserializing every JointState with rosbags costs ~12 us; most of that is building Python
objects we throw away. The bytes after the joint-name block sit at fixed offsets once the
block itself (and its alignment) is known, so a layout is derived once per distinct name
block, checked against rosbags' own deserializer, and then reused: a batch of messages with
the same layout becomes one (n, bytes) array sliced column-wise. Anything that does not match
a validated layout (big-endian CDR, odd counts, a new name order) goes through rosbags.
Nothing here writes CDR; it only reads offsets that rosbags confirmed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

_U32 = struct.Struct("<I")
_CDR_LE = b"\x00\x01"


class DecodeError(Exception):
    """A message that cannot become a feature; ``index`` is its position in the batch."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


class Wire:
    """Offsets and alignment of one serialization: CDR little-endian or ROS 1."""

    def __init__(self, ros1: bool) -> None:
        self.ros1 = ros1
        self.base = 0 if ros1 else 4  # CDR aligns relative to the end of the 4-byte header
        self.nul = 0 if ros1 else 1  # CDR string lengths count the terminating NUL

    def align(self, offset: int, size: int) -> int:
        if self.ros1:
            return offset
        rel = offset - self.base
        return self.base + (rel + size - 1) // size * size

    def ok(self, raw: bytes) -> bool:
        return self.ros1 or raw[:2] == _CDR_LE

    def header_end(self, raw: bytes) -> int:
        """Offset just after std_msgs/Header (ROS 1 has a uint32 seq before the stamp)."""
        flen_at = 12
        (flen,) = _U32.unpack_from(raw, flen_at)
        return self.align(flen_at + 4 + flen, 4)

    def strings(self, raw: bytes, offset: int) -> tuple[list[str], int]:
        """Parse a sequence<string> at ``offset``; return names and the end offset."""
        offset = self.align(offset, 4)
        (count,) = _U32.unpack_from(raw, offset)
        offset += 4
        names = []
        for _ in range(count):
            offset = self.align(offset, 4)
            (size,) = _U32.unpack_from(raw, offset)
            offset += 4
            names.append(raw[offset:offset + size - self.nul].decode())
            offset += size
        return names, offset

    def f64_array(self, offset: int) -> tuple[int, int]:
        """(offset of the count, offset of the first float64) for a sequence<float64>."""
        count_at = self.align(offset, 4)
        return count_at, self.align(count_at + 4, 8)


@dataclass
class _Layout:
    block: bytes  # serialized names sequence, compared byte-for-byte
    mod: int  # block start modulo 8: alignment after it depends on it
    n: int  # number of names
    pos_count: int  # offsets relative to the block start
    pos: int
    vel_count: int
    vel: int
    cols: np.ndarray | None  # message index of each configured joint; None if one is missing
    missing: str


def _columns(mat: np.ndarray, start: int, count: int, dtype: str) -> np.ndarray:
    width = np.dtype(dtype).itemsize * count
    return np.ascontiguousarray(mat[:, start:start + width]).view(dtype)


class JointStateDecoder:
    """sensor_msgs/JointState bytes -> (positions, velocities) of ``joints``, by name."""

    def __init__(self, joints: Sequence[str], deserialize: Callable[[bytes], object],
                 ros1: bool) -> None:
        self.joints = list(joints)
        self.deserialize = deserialize
        self.wire = Wire(ros1)
        self._layouts: dict[tuple[bytes, int], _Layout | None] = {}
        self._last: _Layout | None = None
        self.fast = 0  # messages decoded from a validated layout (reported by the bench)
        self.slow = 0

    def _layout(self, raw: bytes, start: int) -> _Layout | None:
        last = self._last
        if last is not None and last.mod == start % 8 and raw.startswith(last.block, start):
            return last
        names, end = self.wire.strings(raw, start)
        key = (raw[start:end], start % 8)
        if key not in self._layouts:
            if len(self._layouts) > 4096:  # many name orders: keep memory bounded
                self._layouts.clear()
            self._layouts[key] = self._validate(raw, start, end, names)
        layout = self._layouts[key]
        if layout is not None:
            self._last = layout
        return layout

    def _validate(self, raw: bytes, start: int, end: int, names: list[str]) -> _Layout | None:
        """Derive offsets from this message and keep them only if rosbags agrees."""
        n = len(names)
        pos_count, pos = self.wire.f64_array(end)
        vel_count, vel = self.wire.f64_array(pos + 8 * n)
        if vel + 8 * n > len(raw):
            return None
        try:
            msg = self.deserialize(raw)
        except Exception:  # noqa: BLE001 - the slow path reports it with context
            return None
        ok = (
            list(msg.name) == names
            and _U32.unpack_from(raw, pos_count)[0] == n == len(msg.position)
            and _U32.unpack_from(raw, vel_count)[0] == n == len(msg.velocity)
            and np.array_equal(np.frombuffer(raw, "<f8", n, pos), msg.position, equal_nan=True)
            and np.array_equal(np.frombuffer(raw, "<f8", n, vel), msg.velocity, equal_nan=True)
        )
        if not ok or len(set(names)) != n:
            return None
        index = {name: i for i, name in enumerate(names)}
        missing = [j for j in self.joints if j not in index]
        cols = None if missing else np.array([index[j] for j in self.joints], dtype=np.intp)
        return _Layout(raw[start:end], start % 8, n, pos_count - start, pos - start,
                       vel_count - start, vel - start, cols, ", ".join(missing))

    def decode(self, raws: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        count = len(raws)
        pos = np.empty((count, len(self.joints)))
        vel = np.empty_like(pos)
        groups: dict[tuple[int, int, int], tuple[_Layout, list[int]]] = {}
        slow: list[int] = []
        for i, raw in enumerate(raws):
            layout = None
            if self.wire.ok(raw) and len(raw) >= 16:
                start = self.wire.header_end(raw)
                layout = self._layout(raw, start) if start < len(raw) else None
            if layout is None or len(raw) < start + layout.vel + 8 * layout.n:
                slow.append(i)  # too short for the layout: rosbags decodes and reports it
                continue
            if layout.cols is None:
                raise DecodeError(i, f"joint(s) {layout.missing} missing from the message")
            key = (id(layout), start, len(raw))
            groups.setdefault(key, (layout, []))[1].append(i)
        for (_, start, _), (layout, rows) in groups.items():
            mat = np.frombuffer(b"".join([raws[i] for i in rows]), np.uint8)
            mat = mat.reshape(len(rows), -1)
            counts_ok = (_columns(mat, start + layout.pos_count, 1, "<u4")[:, 0] == layout.n) & (
                _columns(mat, start + layout.vel_count, 1, "<u4")[:, 0] == layout.n)
            idx = np.asarray(rows)
            good, ok_rows = idx[counts_ok], mat[counts_ok]
            pos[good] = _columns(ok_rows, start + layout.pos, layout.n, "<f8")[:, layout.cols]
            vel[good] = _columns(ok_rows, start + layout.vel, layout.n, "<f8")[:, layout.cols]
            slow.extend(idx[~counts_ok].tolist())
            self.fast += len(good)
        for i in slow:
            pos[i], vel[i] = self._slow(i, raws[i])
        self.slow += len(slow)
        return pos, vel

    def _slow(self, i: int, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
        try:
            msg = self.deserialize(raw)
        except Exception as exc:  # noqa: BLE001 - rosbags raises several types for bad bytes
            raise DecodeError(i, f"cannot deserialize ({exc})") from None
        names = list(msg.name)
        for field in ("position", "velocity"):
            if len(getattr(msg, field)) != len(names):
                raise DecodeError(i, f"{field} has {len(getattr(msg, field))} values for "
                                     f"{len(names)} names")
        index = {name: k for k, name in enumerate(names)}
        missing = [j for j in self.joints if j not in index]
        if missing:
            raise DecodeError(i, f"joint(s) {', '.join(missing)} missing from the message")
        if len(index) != len(names):
            raise DecodeError(i, "duplicate joint names in the message")
        cols = [index[j] for j in self.joints]
        return np.asarray(msg.position)[cols], np.asarray(msg.velocity)[cols]


class Float64ArrayDecoder:
    """std_msgs/Float64MultiArray bytes -> data (n, width); fast when layout.dim is empty."""

    def __init__(self, width: int, deserialize: Callable[[bytes], object], ros1: bool) -> None:
        self.width = width
        self.deserialize = deserialize
        self.wire = Wire(ros1)
        # empty dim sequence, then data_offset, then the data sequence
        self.count_at, self.data_at = self.wire.f64_array(self.wire.base + 8)
        self.validated: bool | None = None  # checked against rosbags on the first message
        self.fast = 0
        self.slow = 0

    def _fast_ok(self, raw: bytes) -> bool:
        return (self.wire.ok(raw) and len(raw) == self.data_at + 8 * self.width
                and raw.startswith(b"\0\0\0\0", self.wire.base)
                and _U32.unpack_from(raw, self.count_at)[0] == self.width)

    def decode(self, raws: Sequence[bytes]) -> np.ndarray:
        out = np.empty((len(raws), self.width))
        fast = [i for i, raw in enumerate(raws) if self._fast_ok(raw)]
        if fast and self.validated is None:
            first = raws[fast[0]]
            ref = np.asarray(self._msg(fast[0], first).data, dtype=np.float64)
            got = np.frombuffer(first, "<f8", self.width, self.data_at)
            self.validated = np.array_equal(ref, got, equal_nan=True)
        if not self.validated:
            fast = []
        if fast:
            mat = np.frombuffer(b"".join([raws[i] for i in fast]), np.uint8)
            out[fast] = _columns(mat.reshape(len(fast), -1), self.data_at, self.width, "<f8")
        fast_set = set(fast)
        for i, raw in enumerate(raws):
            if i not in fast_set:
                data = np.asarray(self._msg(i, raw).data, dtype=np.float64)
                if data.shape != (self.width,):
                    raise DecodeError(i, f"data has {data.size} values, expected {self.width}")
                out[i] = data
        self.fast += len(fast)
        self.slow += len(raws) - len(fast)
        return out

    def _msg(self, i: int, raw: bytes) -> object:
        try:
            return self.deserialize(raw)
        except Exception as exc:  # noqa: BLE001 - rosbags raises several types for bad bytes
            raise DecodeError(i, f"cannot deserialize ({exc})") from None


def header_stamp_ns(raw: bytes, ros1: bool) -> int:
    """header.stamp of a message whose first field is std_msgs/Header, in nanoseconds."""
    if ros1:
        sec, nsec = struct.unpack_from("<iI", raw, 4)  # after uint32 seq
    elif raw[1:2] == b"\x00":  # big-endian CDR
        sec, nsec = struct.unpack_from(">iI", raw, 4)
    else:
        sec, nsec = struct.unpack_from("<iI", raw, 4)
    return sec * 1_000_000_000 + nsec
