"""Two controllers on the same layouts, episode by episode.

At 90-96 % success a difference of a point or two between two checkpoints is one or two
layouts; what tells a change from noise is which layouts changed. Only the discordant
episodes (one succeeds, the other fails) carry information; the exact two-sided sign test
on them (McNemar's exact test) says how often a split at least this uneven arises when
neither controller is better.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import comb
from typing import Any


def sign_test_p(gained: int, lost: int) -> float:
    """Exact two-sided p of ``gained`` vs ``lost`` discordant pairs under p = 1/2."""
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(gained, lost) + 1)) / 2 ** n
    return min(1.0, 2.0 * tail)


def paired(base: Sequence[Mapping[str, Any]], other: Sequence[Mapping[str, Any]]
           ) -> dict[str, Any]:
    """Episodes (dicts with ``seed`` and ``success``) of ``other`` against ``base``, matched
    by layout seed: ``gained`` = failed in base and succeeded in other, ``lost`` = the
    reverse, ``p`` = sign_test_p(gained, lost)."""
    a = {e["seed"]: bool(e["success"]) for e in base}
    b = {e["seed"]: bool(e["success"]) for e in other}
    if a.keys() != b.keys():
        raise ValueError("paired: the two runs are not on the same layouts")
    gained = sum(1 for s in a if b[s] and not a[s])
    lost = sum(1 for s in a if a[s] and not b[s])
    return {"episodes": len(a), "success_base": sum(a.values()) / max(len(a), 1),
            "success": sum(b.values()) / max(len(b), 1), "gained": gained, "lost": lost,
            "p": sign_test_p(gained, lost)}
