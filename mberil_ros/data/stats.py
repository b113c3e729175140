"""Per-feature statistics in LeRobot's stats.json layout: mean/std/min/max/count and the
quantiles q01 ... q99, one value per vector entry.

Moments are merged batch by batch (Chan et al.) so memory stays flat. Quantiles need the
values themselves: an episode's are exact (its arrays are in memory anyway); a dataset's come
from a second pass over the written data, through per-entry histograms between the known
min and max (HistogramQuantiles), so memory stays flat there too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
BINS = 10_000  # dataset quantiles are exact to (max - min) / BINS


def quantile_key(q: float) -> str:
    """LeRobot's name for a quantile: 0.01 -> "q01"."""
    return f"q{round(q * 100):02d}"


def as_rows(values: np.ndarray) -> np.ndarray:
    """(T,) or (T, D) -> (T, D): a scalar feature's statistics have shape (1,) (LeRobot)."""
    values = np.asarray(values)
    return values[:, None] if values.ndim == 1 else values


def quantiles(values: np.ndarray) -> dict[str, list[float]]:
    """Exact quantiles (linear interpolation) per vector entry."""
    rows = as_rows(values).astype(np.float64)
    qs = np.quantile(rows, QUANTILES, axis=0)
    return {quantile_key(q): qs[i].tolist() for i, q in enumerate(QUANTILES)}


def array_stats(values: np.ndarray) -> tuple[RunningStats, dict[str, list[float]]]:
    """Every statistic of one array (an episode's values): its moments, to merge into a
    dataset's, and the dict of all of them."""
    rows = as_rows(values)
    running = RunningStats(rows.shape[1])
    running.update(rows)
    return running, {**running.to_dict(), **quantiles(rows)}


class RunningStats:
    def __init__(self, width: int) -> None:
        self.count = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)  # sum of squared deviations from the mean
        self.min = np.full(width, np.inf)
        self.max = np.full(width, -np.inf)

    def update(self, batch: np.ndarray) -> None:
        batch = as_rows(batch).astype(np.float64)
        if len(batch) == 0:
            return
        b_mean = batch.mean(axis=0)
        self._merge(len(batch), b_mean, ((batch - b_mean) ** 2).sum(axis=0), batch.min(axis=0),
                    batch.max(axis=0))

    def merge(self, other: RunningStats) -> None:
        """Add another batch's statistics (the same as updating with its values)."""
        if other.count:
            self._merge(other.count, other.mean, other.m2, other.min, other.max)

    def _merge(self, n: int, b_mean: np.ndarray, b_m2: np.ndarray, b_min: np.ndarray,
               b_max: np.ndarray) -> None:
        total = self.count + n
        delta = b_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + b_m2 + delta**2 * (self.count * n / total)
        self.count = total
        self.min = np.minimum(self.min, b_min)
        self.max = np.maximum(self.max, b_max)

    def to_dict(self) -> dict[str, Any]:
        """Population std; a constant feature has std 0 (normalizers must add an epsilon)."""
        std = np.sqrt(self.m2 / self.count) if self.count else self.m2
        return {
            "mean": self.mean.tolist(),
            "std": std.tolist(),
            "min": self.min.tolist(),
            "max": self.max.tolist(),
            "count": [self.count],
        }


class HistogramQuantiles:
    """Quantiles of a stream of (T, D) batches whose per-entry bounds ``lo``/``hi`` are known:
    counts in ``bins`` equal bins per entry, interpolated within the bin (as np.quantile's
    linear rule between order statistics), so within (hi - lo) / bins of the exact value."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, bins: int = BINS) -> None:
        self.lo, self.hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        self.bins = bins
        self.span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)
        self.offsets = np.arange(len(self.lo)) * bins
        self.counts = np.zeros(len(self.lo) * bins, dtype=np.int64)

    def update(self, batch: np.ndarray) -> None:
        rows = as_rows(batch).astype(np.float64)
        idx = np.clip(((rows - self.lo) / self.span * self.bins).astype(np.int64), 0,
                      self.bins - 1)
        self.counts += np.bincount((idx + self.offsets).ravel(), minlength=len(self.counts))

    def _order_statistic(self, cum: np.ndarray, counts: np.ndarray, j: np.ndarray
                         ) -> np.ndarray:
        """The j-th smallest value of each entry (0-based), placed inside its bin."""
        rows = np.arange(len(j))
        k = np.array([np.searchsorted(c, r, side="right") for c, r in zip(cum, j, strict=True)])
        k = np.minimum(k, self.bins - 1)
        before = np.where(k > 0, cum[rows, np.maximum(k - 1, 0)], 0)
        inside = (j - before + 0.5) / np.maximum(counts[rows, k], 1)
        value = self.lo + self.span * (k + np.clip(inside, 0.0, 1.0)) / self.bins
        return np.clip(value, self.lo, self.hi)

    def quantiles(self) -> dict[str, list[float]]:
        counts = self.counts.reshape(len(self.lo), self.bins)
        cum = np.cumsum(counts, axis=1)
        n = cum[:, -1]
        out = {}
        for q in QUANTILES:
            # np.quantile's linear rule: between the order statistics around rank q (n - 1)
            rank = q * (n - 1)
            below = np.floor(rank).astype(np.int64)
            above = np.minimum(below + 1, n - 1)
            lo = self._order_statistic(cum, counts, below)
            hi = self._order_statistic(cum, counts, above)
            out[quantile_key(q)] = (lo + (rank - below) * (hi - lo)).tolist()
        return out
