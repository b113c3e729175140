"""Per-feature mean/std/min/max, merged batch by batch (Chan et al.) so memory stays flat."""

from __future__ import annotations

from typing import Any

import numpy as np


class RunningStats:
    def __init__(self, width: int) -> None:
        self.count = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)  # sum of squared deviations from the mean
        self.min = np.full(width, np.inf)
        self.max = np.full(width, -np.inf)

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, dtype=np.float64)
        n = len(batch)
        if n == 0:
            return
        b_mean = batch.mean(axis=0)
        b_m2 = ((batch - b_mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = b_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + b_m2 + delta**2 * (self.count * n / total)
        self.count = total
        self.min = np.minimum(self.min, batch.min(axis=0))
        self.max = np.maximum(self.max, batch.max(axis=0))

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
