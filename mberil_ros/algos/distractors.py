"""Distractor obstacles: empty obstacle slots filled, at training time, with obstacles that
could not have changed the demonstration.

Why: cloned policies fail on new obstacle placements mostly with an obstacle nowhere near
the path (docs/learning.md): a value the network never saw in an obstacle slot moves its
output even when the obstacle does not matter. A demonstrator reacts to an obstacle only
when it is near the arm or near the way from the hand to the goal, so an obstacle that
stays clear of both, at every tick of an episode, leaves the recorded actions valid. Adding
such obstacles to the observation (never to the physics) was meant to teach the networks
that an obstacle far from where the arm goes does not change what to do. Measured
(docs/learning.md, "What the networks read of the distractors"): REGION is far larger than
the recorded obstacles' range, so with the input clamp (network.clip_inputs) the networks
read nearly every distractor moved to the edge of that range; what they learn is to
discount obstacles read there, which is where the gains on new placements come from, and
which makes them pay less attention to an obstacle outside anything demonstrated.

Per training episode, ``candidate_sets`` draws a few sets of such obstacles once (at data
load); each batch then fills 1..k of an episode's empty slots from one set, with the
probability ``DataConfig.distractors``. A candidate must keep
- ``ARM_CLEARANCE`` from every arm link's bounding sphere, at every ``FRAME_STRIDE``-th tick
  (the scripted expert's repulsion reaches 5 cm);
- ``CORRIDOR_CLEARANCE`` from the straight segments from the hand to the goal and to points
  above it (``CORRIDOR_LIFTS``), from every such tick (the expert's line-of-sight test uses
  7.5 cm; a person looks at the same corridor);
- ``OBSTACLE_GAP`` from the episode's own obstacles and from the other distractors.
Candidates come from ``REGION`` (x, y, top, half size; right arm, mirrored for the left):
the table in front of the arm's side and up to 0.25 m tall, whatever the suite.
"""

from __future__ import annotations

import mujoco
import numpy as np
import torch

from mberil_ros.sim.kinematics import ArmKinematics
from mberil_ros.sim.model import HAND_SITES
from mberil_ros.sim.observation import obstacle_features, obstacles_from_features
from mberil_ros.sim.scene import Obstacle, footprints_apart, points_obstacle_distance
from mberil_ros.sim.spaces import (
    ALL_JOINTS,
    OBSTACLE_FIELDS,
    OBSTACLE_WIDTH,
    observation_layout,
)
from mberil_ros.sim.suites import Box, obstacle_from_params

REGION = Box((0.18, -0.56, 0.02, 0.020), (0.60, 0.10, 0.25, 0.035))
SPHERE_SHARE = 0.3  # as in the task's suites
ARM_CLEARANCE = 0.07  # m
CORRIDOR_CLEARANCE = 0.10  # m
CORRIDOR_LIFTS = (0.0, 0.15, 0.30)  # m above the goal
OBSTACLE_GAP = 0.03  # m
FRAME_STRIDE = 5  # ticks (0.1 s at 50 Hz)
DRAWS = 64  # candidates drawn per set before giving up on filling it


def slot_count(state_names: list[str]) -> int:
    """Obstacle slots in an observation (``obstacle0.x``, ``obstacle1.x``, ...)."""
    n = 0
    while f"obstacle{n}.{OBSTACLE_FIELDS[0]}" in state_names:
        n += 1
    return n


def not_applicable(state_names: list[str], arm: str) -> str | None:
    """Why an observation cannot take distractors (no goal, no obstacle slots), or None."""
    goals = [f"{r}.{c}" for r in observation_layout(arm).goal_roles for c in "xyz"]
    missing = [g for g in goals if g not in state_names]
    if missing:
        return f"no goal features ({', '.join(missing)})"
    if slot_count(state_names) == 0:
        return "no obstacle slots (obstacle0.x, ...)"
    return None


class EpisodeSweep:
    """Where an episode's arm goes: the points a distractor must keep away from."""

    def __init__(self, state_names: list[str], arm: str) -> None:
        """Raises ValueError naming what is missing when the observation has no goal or no
        obstacle slots (``not_applicable`` says so beforehand)."""
        problem = not_applicable(state_names, arm)
        if problem:
            raise ValueError(problem)
        self.kin = ArmKinematics()
        layout = observation_layout(arm)
        self.hands = layout.hands
        self.joint_cols = {n[:-4]: i for i, n in enumerate(state_names) if n.endswith(".pos")}
        self.goal_cols = [[state_names.index(f"{r}.{c}") for c in "xyz"]
                          for r in layout.goal_roles]
        self.slot_cols = [state_names.index(f"obstacle{s}.{OBSTACLE_FIELDS[0]}")
                          for s in range(slot_count(state_names))]
        self.n_slots = len(self.slot_cols)
        m = self.kin.model
        joints = [n for n in self.joint_cols if n in ALL_JOINTS]
        self._qadr = np.array([int(m.joint(n).qposadr[0]) for n in joints])
        self._qcols = np.array([self.joint_cols[n] for n in joints])
        self._sites = [m.site(HAND_SITES[s]).id for s in self.hands]
        self._geoms = [g for s in self.hands for g, _ in self.kin.link_geoms[s]]
        self._rbound = m.geom_rbound[self._geoms].copy()

    def static_obstacles(self, obs: np.ndarray) -> list[Obstacle] | None:
        """The episode's obstacles, or None when they or the goal change during the episode
        (then it gets no distractors: the rule above assumes a fixed scene)."""
        slots = np.stack([obs[:, c:c + OBSTACLE_WIDTH] for c in self.slot_cols], 1)
        goals = obs[:, sum(self.goal_cols, [])]
        if not (np.allclose(slots, slots[:1], atol=1e-6)
                and np.allclose(goals, goals[:1], atol=1e-6)):
            return None
        return obstacles_from_features(slots[0])

    def keep_out(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(arm points, their radii, corridor points) over every FRAME_STRIDE-th tick."""
        frames = list(range(0, len(obs), FRAME_STRIDE)) + [len(obs) - 1]
        m, d = self.kin.model, self.kin.data
        points, hands = [], []
        for t in frames:
            d.qpos[self._qadr] = obs[t, self._qcols]
            mujoco.mj_kinematics(m, d)  # positions only: no Jacobians needed here
            points.append(d.geom_xpos[self._geoms].copy())
            hands.append([d.site_xpos[i].copy() for i in self._sites])
        arm = np.concatenate(points)
        radius = np.tile(self._rbound, len(frames))
        lam = np.linspace(0.0, 1.0, 12)[:, None]
        corridor = []
        for i, cols in enumerate(self.goal_cols):
            goal = obs[0, cols]
            for lift in CORRIDOR_LIFTS:
                end = goal + (0.0, 0.0, lift)
                for h in hands:
                    corridor.append(h[i] + lam * (end - h[i]))
        return arm, radius, np.concatenate(corridor)


def _draw(rng: np.random.Generator, side: str) -> Obstacle:
    kind = "sphere" if rng.random() < SPHERE_SHARE else "box"
    return obstacle_from_params(REGION.sample(rng), kind, side)


def candidate_sets(sweep: EpisodeSweep, obs: np.ndarray, n_sets: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """``n_sets`` sets of distractors for one episode's raw observations (T, obs_dim):
    (raw slot features (n_sets, slots, OBSTACLE_WIDTH), how many of each set's
    slots are filled (n_sets,), index of the first empty slot)."""
    n = sweep.n_slots
    feats = np.zeros((n_sets, n, OBSTACLE_WIDTH))
    counts = np.zeros(n_sets, dtype=np.int64)
    real = sweep.static_obstacles(obs)
    if real is None or len(real) >= n:
        return feats, counts, n
    arm, radius, corridor = sweep.keep_out(obs)
    empty = n - len(real)
    for k in range(n_sets):
        chosen: list[Obstacle] = []
        for _ in range(DRAWS):
            if len(chosen) == empty:
                break
            ob = _draw(rng, sweep.hands[rng.integers(len(sweep.hands))])
            if not all(footprints_apart(ob, o, OBSTACLE_GAP) for o in real + chosen):
                continue
            if np.min(points_obstacle_distance(arm, ob) - radius) < ARM_CLEARANCE:
                continue
            if np.min(points_obstacle_distance(corridor, ob)) < CORRIDOR_CLEARANCE:
                continue
            chosen.append(ob)
        counts[k] = len(chosen)
        if chosen:
            slots = obstacle_features(chosen, n).reshape(n, -1)
            feats[k, :len(chosen)] = slots[:len(chosen)]
    return feats, counts, len(real)


class DistractorBank:
    """Every training episode's candidate sets, normalized for the slots they go into."""

    def __init__(self, feats: torch.Tensor, counts: torch.Tensor, first: torch.Tensor,
                 slot_cols: list[int]) -> None:
        self.feats, self.counts, self.first, self.slot_cols = feats, counts, first, slot_cols

    @classmethod
    def build(cls, episodes: list[np.ndarray], state_names: list[str], arm: str,
              obs_mean: np.ndarray, obs_scale: np.ndarray, n_sets: int, seed: int
              ) -> DistractorBank:
        """``episodes``: raw observations (T, obs_dim) of each training episode, in order."""
        sweep = EpisodeSweep(state_names, arm)
        rng = np.random.default_rng(seed)
        n = len(episodes)
        slots = sweep.n_slots
        feats = np.zeros((n, n_sets, slots, OBSTACLE_WIDTH), dtype=np.float32)
        counts = np.zeros((n, n_sets), dtype=np.int64)
        first = np.zeros(n, dtype=np.int64)
        for i, obs in enumerate(episodes):
            raw, counts[i], first[i] = candidate_sets(sweep, obs, n_sets, rng)
            for j in range(slots - first[i]):
                c = sweep.slot_cols[first[i] + j]
                cols = slice(c, c + OBSTACLE_WIDTH)
                feats[i, :, j] = (raw[:, j] - obs_mean[cols]) / obs_scale[cols]
            feats[i][np.arange(slots)[None, :] >= counts[i][:, None]] = 0.0
        return cls(torch.from_numpy(feats), torch.from_numpy(counts), torch.from_numpy(first),
                   sweep.slot_cols)

    def coverage(self) -> float:
        """Fraction of episodes that can get at least one distractor."""
        return float((self.counts.max(1).values > 0).float().mean()) if len(self.counts) else 0.0

    def apply(self, obs: torch.Tensor, next_obs: torch.Tensor, rows: torch.Tensor,
              prob: float, gen: torch.Generator) -> None:
        """With probability ``prob`` per sequence, write 1..k distractors of one of its
        episode's sets into its empty slots, the same at every step (in place; obs and
        next_obs are (B, T, obs_dim) normalized, rows[b] the episode of sequence b)."""
        b = len(rows)
        use = torch.rand(b, generator=gen) < prob
        k = torch.randint(self.counts.shape[1], (b,), generator=gen)
        avail = self.counts[rows, k]
        m = (torch.rand(b, generator=gen) * avail).long() + 1  # 1..avail
        m = torch.where(use & (avail > 0), m, torch.zeros_like(m))
        for j in range(len(self.slot_cols)):
            sel = torch.nonzero(m > j)[:, 0]
            if len(sel) == 0:
                break
            slot = self.first[rows[sel]] + j
            vals = self.feats[rows[sel], k[sel], j]
            for s, c in enumerate(self.slot_cols):
                here = slot == s
                if here.any():
                    ids = sel[here]
                    obs[ids, :, c:c + OBSTACLE_WIDTH] = vals[here][:, None]
                    next_obs[ids, :, c:c + OBSTACLE_WIDTH] = vals[here][:, None]
