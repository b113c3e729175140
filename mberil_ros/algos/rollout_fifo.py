"""D_G of Offline-MB-ERIL: a fixed-capacity FIFO of model rollouts, oldest dropped first."""

from __future__ import annotations

from typing import Any

import torch


class RolloutFIFO:
    """D_G: generated sequences (real prefix + H model steps) with a mask of generated states."""

    def __init__(self, capacity: int, t_max: int, obs_dim: int, act_dim: int) -> None:
        self.obs = torch.zeros(capacity, t_max, obs_dim)
        self.prev_act = torch.zeros(capacity, t_max, act_dim)
        self.gen = torch.zeros(capacity, t_max, dtype=torch.bool)
        self.length = torch.zeros(capacity, dtype=torch.long)
        self.ptr, self.count = 0, 0

    def add(self, obs: torch.Tensor, prev_act: torch.Tensor, gen: torch.Tensor,
            length: torch.Tensor) -> None:
        n, t = obs.shape[:2]
        rows = (self.ptr + torch.arange(n)) % len(self.length)
        self.obs[rows], self.prev_act[rows], self.gen[rows] = 0.0, 0.0, False
        self.obs[rows, :t], self.prev_act[rows, :t], self.gen[rows, :t] = obs, prev_act, gen
        self.length[rows] = length
        self.ptr = int((self.ptr + n) % len(self.length))
        self.count = min(self.count + n, len(self.length))

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        rows = torch.randint(self.count, (n,), generator=gen)
        t = int(self.length[rows].max())
        return self.obs[rows, :t], self.prev_act[rows, :t], self.gen[rows, :t]

    def state(self) -> dict[str, Any]:
        return {"obs": self.obs.clone(), "prev_act": self.prev_act.clone(),
                "gen": self.gen.clone(), "length": self.length.clone(), "ptr": self.ptr,
                "count": self.count}

    def load_state(self, s: dict[str, Any]) -> None:
        for k in ("obs", "prev_act", "gen", "length"):
            getattr(self, k).copy_(s[k])
        self.ptr, self.count = int(s["ptr"]), int(s["count"])
