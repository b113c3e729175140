"""Training data for the algorithms: normalization, episode split, whole-episode batches.

Every batch is a set of sequences that START AT THE EPISODE START (ALGORITHM.md §7 "train
the way you infer"): whole episodes, padded at the end, with a mask. Padding is causal-safe
(Mamba and the MLP encoder never let a later token change an earlier latent), so padded steps
only need to be left out of the losses. ``max_seq_len`` turns long episodes into prefixes
from the start instead of random windows.

Normalization (exported as normalization.json, see ``Normalizer.to_dict``):
- observation: ``(x - mean) / (std + obs_eps)``; the epsilon keeps constant features
  (obstacle present-flags, an unused slot) finite, they just map to ~0;
- action: per joint, ``a = 2 (u - lo) / (hi - lo) - 1`` with ``lo = min - m (max - min)``,
  ``hi = max + m (max - min)``: the recorded range lands inside [-1/(1+2m), 1/(1+2m)], so
  the tanh-squashed policy never needs atanh(+-1). Inverse: ``u = lo + (a + 1) (hi - lo) / 2``.
All arrays are loaded once and kept as padded float32 tensors; sampling indexes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mberil_ros.data.dataset import Dataset
from mberil_ros.errors import UserError
from mberil_ros.sim.labels import DEMONSTRATORS

LABELS = ("expert", "suboptimal", "all")


@dataclass
class DataConfig:
    """How a dataset becomes training batches."""

    val_fraction: float = 0.1  # fraction of episodes (per label) held out for evaluate()
    split_seed: int = 0  # seed of the episode split (the same on every rank)
    max_seq_len: int | None = None  # None: whole episodes; else prefixes of this length
    obs_eps: float = 1e-3  # added to the observation std (constant features stay finite)
    act_margin: float = 0.05  # action range widened by this fraction of (max - min) per side

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"DataConfig.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.max_seq_len is not None and self.max_seq_len < 1:
            raise ValueError(f"DataConfig.max_seq_len must be >= 1 or null, got "
                             f"{self.max_seq_len}")
        if self.obs_eps <= 0:
            raise ValueError(f"DataConfig.obs_eps must be > 0, got {self.obs_eps}")
        if self.act_margin < 0:
            raise ValueError(f"DataConfig.act_margin must be >= 0, got {self.act_margin}")


@dataclass
class Normalizer:
    obs_mean: np.ndarray
    obs_scale: np.ndarray  # std + eps
    act_low: np.ndarray
    act_high: np.ndarray

    @classmethod
    def from_stats(cls, stats: dict[str, dict[str, list[float]]], cfg: DataConfig
                   ) -> Normalizer:
        obs, act = stats["observation.state"], stats["action"]
        lo, hi = np.asarray(act["min"], np.float64), np.asarray(act["max"], np.float64)
        # a joint that never moved still needs a non-empty range
        span = np.maximum(hi - lo, 1e-3)
        return cls(np.asarray(obs["mean"], np.float32),
                   (np.asarray(obs["std"], np.float64) + cfg.obs_eps).astype(np.float32),
                   (lo - cfg.act_margin * span).astype(np.float32),
                   (lo + (1 + cfg.act_margin) * span).astype(np.float32))

    def obs(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.obs_mean) / self.obs_scale).astype(np.float32)

    def act(self, u: np.ndarray) -> np.ndarray:
        return (2.0 * (u - self.act_low) / (self.act_high - self.act_low) - 1.0).astype(np.float32)

    def act_inverse(self, a: np.ndarray) -> np.ndarray:
        return (self.act_low + (a + 1.0) * 0.5 * (self.act_high - self.act_low)).astype(
            np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "observation": {"type": "mean_std", "mean": self.obs_mean.tolist(),
                            "scale": self.obs_scale.tolist(),
                            "formula": "(x - mean) / scale"},
            "action": {"type": "min_max_to_unit", "low": self.act_low.tolist(),
                       "high": self.act_high.tolist(),
                       "formula": "a = 2 (u - low) / (high - low) - 1; "
                                  "u = low + (a + 1) (high - low) / 2"},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        f = lambda v: np.asarray(v, np.float32)  # noqa: E731
        return cls(f(d["observation"]["mean"]), f(d["observation"]["scale"]),
                   f(d["action"]["low"]), f(d["action"]["high"]))


@dataclass
class Batch:
    """Sequences from the episode start: obs/next_obs (B, T, obs_dim), act/prev_act
    (B, T, act_dim), mask (B, T) bool (False on padding), expert (B,) bool."""

    obs: torch.Tensor
    act: torch.Tensor
    prev_act: torch.Tensor
    next_obs: torch.Tensor
    mask: torch.Tensor
    expert: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device) for t in dataclasses.astuple(self)))


class EpisodeSet:
    """Normalized episodes of one split, padded to the longest: indexing, not copying."""

    def __init__(self, episodes: list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]],
                 obs_dim: int, act_dim: int) -> None:
        n = len(episodes)
        t_max = max((len(e[0]) for e in episodes), default=1)
        self.obs = torch.zeros(n, t_max, obs_dim)
        self.act = torch.zeros(n, t_max, act_dim)
        self.next_obs = torch.zeros(n, t_max, obs_dim)
        self.length = torch.zeros(n, dtype=torch.long)
        self.expert = torch.zeros(n, dtype=torch.bool)
        for i, (o, a, no, is_expert) in enumerate(episodes):
            t = len(o)
            self.obs[i, :t], self.act[i, :t] = torch.from_numpy(o), torch.from_numpy(a)
            self.next_obs[i, :t] = torch.from_numpy(no)
            self.length[i], self.expert[i] = t, is_expert
        self.index = {"all": torch.arange(n), "expert": torch.nonzero(self.expert)[:, 0],
                      "suboptimal": torch.nonzero(~self.expert)[:, 0]}

    def count(self, label: str) -> int:
        return len(self.index[label])

    def steps(self, label: str) -> int:
        return int(self.length[self.index[label]].sum())

    def gather(self, rows: torch.Tensor) -> Batch:
        t = int(self.length[rows].max())  # trim the padding no row in this batch needs
        act = self.act[rows, :t]
        prev = torch.cat([torch.zeros_like(act[:, :1]), act[:, :-1]], dim=1)
        mask = torch.arange(t)[None, :] < self.length[rows][:, None]
        return Batch(self.obs[rows, :t], act, prev, self.next_obs[rows, :t], mask,
                     self.expert[rows])


class OfflineData:
    """The training data pipeline: ``OfflineData(dataset_or_path, DataConfig())``."""

    def __init__(self, dataset: Dataset | str | Path, cfg: DataConfig | None = None) -> None:
        self.cfg = cfg or DataConfig()
        self.dataset = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        ds = self.dataset
        self.name = str(ds.root)
        self.state_names = ds.feature_names("observation.state")
        self.action_names = ds.feature_names("action")
        self.obs_dim, self.act_dim = len(self.state_names), len(self.action_names)
        self.joint_names = list(ds.info.get("joints") or
                                [n.rsplit(".", 1)[0] for n in self.action_names])
        self.fps = ds.fps
        self.normalizer = Normalizer.from_stats(ds.stats, self.cfg)
        labels = [m["label"] for m in ds.episodes]
        bad = sorted({lab for lab in labels if lab not in ("expert", "suboptimal")})
        if bad:
            raise UserError(f"{self.name}: unknown episode label(s) {bad}")
        if "expert" not in labels:
            raise UserError(f"{self.name}: no expert episodes (label 'expert') to imitate")
        train, val = self._split(labels)
        n = self.normalizer
        cut = self.cfg.max_seq_len
        def load(ids: list[int]) -> EpisodeSet:
            eps = []
            for i in ids:
                e = ds.episode(i)
                eps.append((n.obs(e.observation[:cut]), n.act(e.action[:cut]),
                            n.obs(e.next_observation[:cut]), labels[i] == "expert"))
            return EpisodeSet(eps, self.obs_dim, self.act_dim)
        self.train_ids, self.val_ids = train, val
        self.train, self.val = load(train), load(val)
        self.mixing_ratio = self._mixing_ratio()

    def _split(self, labels: list[str]) -> tuple[list[int], list[int]]:
        """Held-out episodes per label (seeded), so both labels appear in validation."""
        rng = np.random.default_rng(self.cfg.split_seed)
        train, val = [], []
        for label in ("expert", "suboptimal"):
            ids = np.array([i for i, lab in enumerate(labels) if lab == label])
            if len(ids) == 0:
                continue
            rng.shuffle(ids)
            k = int(round(self.cfg.val_fraction * len(ids)))
            if self.cfg.val_fraction > 0 and len(ids) >= 2:
                k = min(max(k, 1), len(ids) - 1)  # keep one for each side
            else:
                k = 0
            val += sorted(ids[:k].tolist())
            train += sorted(ids[k:].tolist())
        return sorted(train), sorted(val)

    def _mixing_ratio(self) -> float | None:
        """Fraction of expert-demonstrator frames inside the sub-optimal (unlabeled) set, when
        every sub-optimal episode names a known sim demonstrator; else None (unknown)."""
        subs = [m for m in self.dataset.episodes if m["label"] == "suboptimal"]
        if not subs or any(m.get("demonstrator") not in DEMONSTRATORS for m in subs):
            return None
        total = sum(m["length"] for m in subs)
        return sum(m["length"] for m in subs if m["demonstrator"] == "expert") / total

    def split(self, name: str) -> EpisodeSet:
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        return self.train if name == "train" else self.val

    def sample(self, label: str, batch_size: int, generator: torch.Generator,
               split: str = "train") -> Batch:
        """``batch_size`` episodes (with replacement) of ``label`` from ``split``."""
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {label!r}")
        episodes = self.split(split)
        ids = episodes.index[label]
        if len(ids) == 0:
            raise UserError(f"{self.name}: no {label} episodes in the {split} split")
        pick = torch.randint(len(ids), (batch_size,), generator=generator)
        return episodes.gather(ids[pick])

    def batches(self, label: str, batch_size: int, split: str = "val") -> list[Batch]:
        """Every episode of ``label`` in ``split``, in order (evaluation)."""
        ids = self.split(split).index[label]
        return [self.split(split).gather(ids[i:i + batch_size])
                for i in range(0, len(ids), batch_size)]

    def policy_config(self) -> dict[str, Any]:
        """Data-side part of policy_config.json."""
        return {"obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "joint_names": self.joint_names, "state_names": self.state_names,
                "action_names": self.action_names, "fps": self.fps,
                "normalization": self.normalizer.to_dict()}


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over the True entries of mask (same leading shape)."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)
