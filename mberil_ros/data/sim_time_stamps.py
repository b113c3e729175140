"""Stamp recorded messages with the simulated time at which they were *sent*.

A recorder that stamps with "the last /clock it has received" races: a command computed from
the state of tick k can be processed after the clock of tick k+1 and land one tick late, so
the converter would pair it with the wrong state. DDS gives every message its publisher's
wall-clock send time (source timestamp); on one machine those are causally ordered: the
state of tick k is sent after the clock of tick k, the command computed from it after that,
and (in lockstep) the clock of tick k+1 only after the command arrived. So the right stamp
is the sim time of the latest /clock *sent* before the message was sent.

Messages are held until a clock sent after them has arrived (then their stamp is final) or
until ``max_hold_ns`` of wall time passed (a paused sim), and released in send order.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque

Release = tuple[str, int, bytes]  # topic, stamp (sim ns), data


class SimTimeStamper:
    def __init__(self, max_hold_ns: int = 500_000_000, clock_history: int = 4096) -> None:
        self.max_hold_ns = max_hold_ns
        self._clock_src: deque[int] = deque(maxlen=clock_history)
        self._clock_sim: deque[int] = deque(maxlen=clock_history)
        self._pending: list[tuple[int, int, str, bytes]] = []
        self._seq = 0

    def _stamp(self, source_ns: int) -> int:
        """Sim time of the latest clock sent at or before ``source_ns`` (0 before any)."""
        i = bisect.bisect_right(self._clock_src, source_ns) - 1
        return self._clock_sim[i] if i >= 0 else (self._clock_sim[0] if self._clock_sim else 0)

    def on_clock(self, source_ns: int, sim_ns: int) -> list[Release]:
        if self._clock_src and source_ns < self._clock_src[-1]:
            source_ns = self._clock_src[-1]  # keep the index sorted (one publisher: no-op)
        self._clock_src.append(source_ns)
        self._clock_sim.append(sim_ns)
        return self._release(lambda src: src < source_ns)

    def push(self, topic: str, source_ns: int, data: bytes) -> list[Release]:
        heapq.heappush(self._pending, (source_ns, self._seq, topic, data))
        self._seq += 1
        latest = self._clock_src[-1] if self._clock_src else None
        return self._release(lambda src: latest is not None and src < latest)

    def expire(self, now_source_ns: int) -> list[Release]:
        """Release what has waited too long (no clock is coming, e.g. a paused sim)."""
        return self._release(lambda src: src < now_source_ns - self.max_hold_ns)

    def flush(self) -> list[Release]:
        return self._release(lambda src: True)

    def _release(self, ready) -> list[Release]:
        out = []
        while self._pending and ready(self._pending[0][0]):
            source_ns, _, topic, data = heapq.heappop(self._pending)
            out.append((topic, self._stamp(source_ns), data))
        return out
