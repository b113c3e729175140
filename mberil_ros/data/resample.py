"""Latest-at-or-before sampling on a fixed grid, with bounded per-topic buffers.

The grid is every whole multiple of ``dt`` nanoseconds. A topic keeps only the messages that
some grid tick will sample: when a new message arrives before the next tick after the
previous one, the previous one can never be sampled and is replaced. So a buffer grows by at
most one message per tick, and ``trim`` drops what no open or future episode can need.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable

import numpy as np


class OutOfOrder(Exception):
    def __init__(self, previous: int, stamp: int) -> None:
        super().__init__(f"timestamp {stamp / 1e9:.9f} s is before the previous message's "
                         f"{previous / 1e9:.9f} s")


class TopicBuffer:
    def __init__(self, dt_ns: int, stamp_of: Callable[[bytes], int] | None = None) -> None:
        self.dt = dt_ns
        self.stamp_of = stamp_of  # None: the receive time is the sample time
        self.stamps: list[int] = []
        self.raws: list[bytes] = []
        self._tick = None  # first tick at or after the newest kept stamp
        self._last = -(2**63)
        self.count = 0
        self.first_receive: int | None = None
        self.last_receive = 0

    def push(self, receive_ns: int, raw: bytes) -> None:
        stamp = receive_ns if self.stamp_of is None else self.stamp_of(raw)
        if stamp < self._last:
            raise OutOfOrder(self._last, stamp)
        self._last = stamp
        if self.first_receive is None:
            self.first_receive = receive_ns
        self.last_receive = receive_ns
        self.count += 1
        tick = -(-stamp // self.dt)
        if tick == self._tick:  # no tick between the previous message and this one
            self.stamps[-1] = stamp
            self.raws[-1] = raw
        else:
            self.stamps.append(stamp)
            self.raws.append(raw)
            self._tick = tick

    def trim(self, horizon_ns: int) -> None:
        """Forget messages superseded at ``horizon_ns`` (keep the latest one at or before it)."""
        i = bisect_right(self.stamps, horizon_ns) - 1
        if i > 0:
            del self.stamps[:i]
            del self.raws[:i]

    def sample(self, ticks: np.ndarray, max_age_ns: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Index of the latest message at or before each tick, and whether it is usable."""
        stamps = np.asarray(self.stamps, dtype=np.int64)
        idx = np.searchsorted(stamps, ticks, side="right") - 1
        valid = idx >= 0
        if max_age_ns is not None and len(stamps):
            valid &= ticks - stamps[np.maximum(idx, 0)] <= max_age_ns
        return idx, valid

    @property
    def rate_hz(self) -> float:
        span = (self.last_receive - (self.first_receive or 0)) / 1e9
        return (self.count - 1) / span if self.count > 1 and span > 0 else 0.0
