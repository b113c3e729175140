"""Training data for the algorithms: the codec, episode split, whole-episode batches.

Every batch is a set of sequences that START AT THE EPISODE START ("train the way you
infer": a recurrent policy deployed from the episode start sees exactly these prefixes):
whole episodes, padded at the end, with a mask. Padding is causal-safe (Mamba and the MLP
encoder never let a later token change an earlier latent), so padded steps only need to be
left out of the losses. ``max_seq_len`` turns long episodes into prefixes from the start.
The one exception is opt-in: ``history_crop`` lets behaviour cloning start some sequences
at a later step, with a fresh history (an augmentation, measured in docs/learning.md).

Normalization, the action representation and the previous-action token are the codec's
(codec.py), fitted on the training split only and exported as normalization.json.
All arrays are loaded once and kept as padded float32 tensors; sampling indexes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mberil_ros.algos.codec import (
    ACTION_REPRS,
    PolicyCodec,
    joint_position_index,
    previous_commands,
)
from mberil_ros.algos.distractors import DistractorBank, not_applicable
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
    action_repr: str = "delta_command"  # what the policy predicts: absolute joint targets |
    #   delta_position (target - measured position) | delta_command (target - last command)
    obs_min_std: float = 1e-4  # observation features with a smaller std keep scale 1
    act_margin: float = 0.05  # predicted range widened by this fraction of (max - min) per side
    distractors: float = 0.0  # probability that a training sequence gets 1..k distractor
    #   obstacles in its empty slots: obstacles that stay clear of the arm and of the
    #   hand-to-goal corridor all episode, so the recorded actions stay valid
    #   (algos/distractors.py); 0: off. 0.5 helps the mlp backbone on the obstacle shift
    #   test and hurts the mamba there (docs/learning.md), so it is opt-in
    distractor_sets: int = 8  # distractor sets drawn per training episode at load time
    history_crop: float = 0.0  # probability that a behaviour-cloning sequence (warm start and
    #   anchor; whole-episode backbones) starts at a random step of its episode with a fresh
    #   history instead of at the episode start, so that the history encoder's first steps
    #   are fitted on states from every phase of a reach, not only on the recorded start
    #   poses (docs/learning.md); 0: off

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"DataConfig.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.max_seq_len is not None and self.max_seq_len < 1:
            raise ValueError(f"DataConfig.max_seq_len must be >= 1 or null, got "
                             f"{self.max_seq_len}")
        if self.action_repr not in ACTION_REPRS:
            raise ValueError(f"DataConfig.action_repr must be one of {ACTION_REPRS}, got "
                             f"{self.action_repr!r}")
        if self.obs_min_std <= 0:
            raise ValueError(f"DataConfig.obs_min_std must be > 0, got {self.obs_min_std}")
        if self.act_margin < 0:
            raise ValueError(f"DataConfig.act_margin must be >= 0, got {self.act_margin}")
        if not 0.0 <= self.distractors <= 1.0:
            raise ValueError(f"DataConfig.distractors must be in [0, 1], got {self.distractors}")
        if self.distractor_sets < 1:
            raise ValueError(f"DataConfig.distractor_sets must be >= 1, got "
                             f"{self.distractor_sets}")
        if not 0.0 <= self.history_crop <= 1.0:
            raise ValueError(f"DataConfig.history_crop must be in [0, 1], got "
                             f"{self.history_crop}")


@dataclass
class Batch:
    """Sequences from the episode start (or, cropped, from a later step), all normalized by
    the codec: obs/next_obs (B, T, obs_dim), act (B, T, act_dim) in (-1, 1), prev_act
    (B, T, act_dim) the previous-action token of each step and next_prev_act that of the
    step after (the token that goes with next_obs), mask (B, T) bool (False on padding),
    expert (B,) bool."""

    obs: torch.Tensor
    act: torch.Tensor
    prev_act: torch.Tensor
    next_obs: torch.Tensor
    next_prev_act: torch.Tensor
    mask: torch.Tensor
    expert: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device) for t in dataclasses.astuple(self)))


class EpisodeSet:
    """Normalized episodes of one split, padded to the longest: indexing, not copying."""

    def __init__(self, episodes: list[dict[str, np.ndarray | bool]], obs_dim: int,
                 act_dim: int) -> None:
        n = len(episodes)
        t_max = max((len(e["obs"]) for e in episodes), default=1)
        self.obs = torch.zeros(n, t_max, obs_dim)
        self.next_obs = torch.zeros(n, t_max, obs_dim)
        self.act = torch.zeros(n, t_max, act_dim)
        self.prev_act = torch.zeros(n, t_max, act_dim)
        self.next_prev_act = torch.zeros(n, t_max, act_dim)
        self.length = torch.zeros(n, dtype=torch.long)
        self.expert = torch.zeros(n, dtype=torch.bool)
        for i, e in enumerate(episodes):
            t = len(e["obs"])
            for key in ("obs", "next_obs", "act", "prev_act", "next_prev_act"):
                getattr(self, key)[i, :t] = torch.from_numpy(e[key])
            self.length[i], self.expert[i] = t, bool(e["expert"])
        self.index = {"all": torch.arange(n), "expert": torch.nonzero(self.expert)[:, 0],
                      "suboptimal": torch.nonzero(~self.expert)[:, 0]}
        valid = torch.arange(t_max)[None, :] < self.length[:, None]
        # (row, step) of every valid step per label: i.i.d. transition batches
        self.steps_index = {k: torch.nonzero(valid[rows]) for k, rows in self.index.items()}
        for k, rows in self.index.items():
            self.steps_index[k][:, 0] = rows[self.steps_index[k][:, 0]]

    def count(self, label: str) -> int:
        return len(self.index[label])

    def steps(self, label: str) -> int:
        return int(self.length[self.index[label]].sum())

    def gather(self, rows: torch.Tensor, starts: torch.Tensor | None = None) -> Batch:
        """Episodes ``rows`` from their start, or from step ``starts`` (per row) on: the
        sequence then begins there, as if the episode had."""
        if starts is None:
            starts = torch.zeros_like(rows)
        length = self.length[rows] - starts
        t = int(length.max())  # trim the padding no row in this batch needs
        steps = (starts[:, None] + torch.arange(t)[None, :]).clamp(max=self.obs.shape[1] - 1)
        pick = lambda x: x[rows[:, None], steps]  # noqa: E731
        mask = torch.arange(t)[None, :] < length[:, None]
        return Batch(pick(self.obs), pick(self.act), pick(self.prev_act), pick(self.next_obs),
                     pick(self.next_prev_act), mask, self.expert[rows])

    def gather_steps(self, pairs: torch.Tensor) -> Batch:
        """Single steps (``pairs``: (n, 2) rows of (episode row, step)) as length-1 sequences."""
        r, t = pairs.unbind(1)
        pick = lambda x: x[r, t][:, None]  # noqa: E731
        return Batch(pick(self.obs), pick(self.act), pick(self.prev_act), pick(self.next_obs),
                     pick(self.next_prev_act), torch.ones(len(r), 1, dtype=torch.bool),
                     self.expert[r])


class OfflineData:
    """The training data pipeline: ``OfflineData(dataset_or_path, DataConfig())``."""

    def __init__(self, dataset: Dataset | str | Path, cfg: DataConfig | None = None, *,
                 codec: PolicyCodec | None = None, evaluate_all: bool = False) -> None:
        """``codec`` (a trained policy's) replaces the one fitted on the training split;
        ``evaluate_all`` puts every episode in the validation split (a test set)."""
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
        self.arm = str(ds.info.get("arm", "right"))
        labels = [m["label"] for m in ds.episodes]
        bad = sorted({lab for lab in labels if lab not in ("expert", "suboptimal")})
        if bad:
            raise UserError(f"{self.name}: unknown episode label(s) {bad}")
        if "expert" not in labels:
            raise UserError(f"{self.name}: no expert episodes (label 'expert') to imitate")
        train, val = ([], list(range(len(labels)))) if evaluate_all else self._split(labels)
        self.qidx = joint_position_index(self.state_names, self.joint_names)
        # what a dynamics model predicts: the controlled joints' positions and velocities
        vel = [f"{j}.vel" for j in self.joint_names]
        self.dynamic_dims = self.qidx.tolist() + [self.state_names.index(v) for v in vel
                                                  if v in self.state_names]
        # statistics of the training split only: held-out episodes never leak into them
        self.codec = codec or PolicyCodec.fit(
            [(e.observation, e.action) for e in map(ds.episode, train)], self.qidx,
            self.cfg.action_repr, self.cfg.obs_min_std, self.cfg.act_margin,
            predicted=[labels[i] == "expert" for i in train])
        cut = self.cfg.max_seq_len

        def load(ids: list[int], raw: list[np.ndarray] | None = None) -> EpisodeSet:
            c, eps = self.codec, []
            for i in ids:
                e = ds.episode(i)
                if raw is not None:
                    raw.append(e.observation[:cut])
                prev = previous_commands(e.observation, e.action, self.qidx)
                obs, nobs = e.observation[:cut], e.next_observation[:cut]
                act, prev = e.action[:cut], prev[:cut]
                eps.append({"obs": c.obs(obs), "next_obs": c.obs(nobs),
                            "act": c.action(act, obs, prev), "prev_act": c.lead(prev, obs),
                            "next_prev_act": c.lead(act, nobs),
                            "expert": labels[i] == "expert"})
            return EpisodeSet(eps, self.obs_dim, self.act_dim)
        self.train_ids, self.val_ids = train, val
        # distractor obstacles for the training split only (validation stays as recorded)
        self.distractors_off = (not_applicable(self.state_names, self.arm)
                                if self.cfg.distractors > 0 else None)
        use = self.cfg.distractors > 0 and bool(train) and self.distractors_off is None
        raw: list[np.ndarray] | None = [] if use else None
        self.train, self.val = load(train, raw), load(val)
        self.distractors = None if raw is None else DistractorBank.build(
            raw, self.state_names, self.arm, self.codec.obs_mean, self.codec.obs_scale,
            self.cfg.distractor_sets, self.cfg.split_seed)
        # per-joint spread of the expert's normalized actions (BC's squared-error units)
        t = self.train
        valid = (torch.arange(t.act.shape[1])[None] < t.length[:, None]) & t.expert[:, None]
        self.act_std = t.act[valid].std(0).clamp(min=1e-3) if valid.any() else torch.ones(
            self.act_dim)
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
        every sub-optimal episode names a known sim demonstrator; else None (unknown). An
        expert run that failed (kept by `failed_expert: suboptimal`) is not a positive."""
        subs = [m for m in self.dataset.episodes if m["label"] == "suboptimal"]
        if not subs or any(m.get("demonstrator") not in DEMONSTRATORS for m in subs):
            return None
        total = sum(m["length"] for m in subs)
        return sum(m["length"] for m in subs
                   if m["demonstrator"] == "expert" and m.get("success") is not False) / total

    def train_observations(self) -> np.ndarray:
        """Raw observations of every valid step of the training split (feature statistics;
        with ``evaluate_all``, of the test set: a checkpoint's own statistics replace them)."""
        t = self.train if self.train.count("all") else self.val
        valid = torch.arange(t.obs.shape[1])[None] < t.length[:, None]
        c = self.codec
        return t.obs[valid].numpy() * c.obs_scale + c.obs_mean

    def split(self, name: str) -> EpisodeSet:
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        return self.train if name == "train" else self.val

    def sample(self, label: str, batch_size: int, generator: torch.Generator,
               split: str = "train", crop: float = 0.0) -> Batch:
        """``batch_size`` episodes (with replacement) of ``label`` from ``split``; with
        probability ``crop`` per row, from a uniformly drawn later step on instead."""
        episodes = self.split(split)
        ids = self._pool(episodes.index, label, split, "episodes")
        rows = ids[torch.randint(len(ids), (batch_size,), generator=generator)]
        starts = None
        if crop > 0:
            later = (torch.rand(batch_size, generator=generator) * episodes.length[rows]).long()
            cut = torch.rand(batch_size, generator=generator) < crop
            starts = torch.where(cut, later, torch.zeros_like(later))
        return self._augment(episodes.gather(rows, starts), rows, split, generator)

    def sample_steps(self, label: str, n: int, generator: torch.Generator,
                     split: str = "train") -> Batch:
        """``n`` single steps drawn uniformly (with replacement) over every step of ``label``
        episodes: a batch of length-1 sequences. Only for networks that read x_t alone (the
        mlp backbone), where a step does not need its history; i.i.d. transitions fit them
        far better per update than a few whole, correlated episodes."""
        episodes = self.split(split)
        pool = self._pool(episodes.steps_index, label, split, "steps")
        pairs = pool[torch.randint(len(pool), (n,), generator=generator)]
        return self._augment(episodes.gather_steps(pairs), pairs[:, 0], split, generator)

    def _augment(self, batch: Batch, rows: torch.Tensor, split: str,
                 generator: torch.Generator) -> Batch:
        """Distractor obstacles on sampled training sequences (DataConfig.distractors)."""
        if split == "train" and self.distractors is not None:
            self.distractors.apply(batch.obs, batch.next_obs, rows, self.cfg.distractors,
                                   generator)
        return batch

    def _pool(self, index: dict[str, torch.Tensor], label: str, split: str, what: str
              ) -> torch.Tensor:
        """What ``label`` draws from in ``index``; a clear error for an unknown or empty one."""
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {label!r}")
        if len(index[label]) == 0:
            raise UserError(f"{self.name}: no {label} {what} in the {split} split")
        return index[label]

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
                "normalization": self.codec.to_dict()}


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over the True entries of mask (same leading shape)."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def extend(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens x_0, y_0, ..., y_{T-1} with their previous-action tokens: step t+1 of this
    sequence is h_t extended by its real next state."""
    obs = torch.cat([batch.obs[:, :1], batch.next_obs], 1)
    prev = torch.cat([batch.prev_act[:, :1], batch.next_prev_act], 1)
    return obs, prev
