"""Named task suites and the explicit regions they sample from (DESIGN.md §7).

Each suite is a set of axis-aligned boxes. The held-out suites differ from ``train`` in one
factor, and that factor's boxes are disjoint from train's along at least one axis, so no
held-out sample can ever be drawn by ``train`` (test_sim_suites checks this):

- ``heldout_init``: initial RARM_JOINT0/1 offsets from init_rtm outside train's interval.
- ``heldout_obstacles``: obstacles bigger than any train obstacle (size axis disjoint), and
  always 2-3 of them.

Regions are written for the right arm; the left arm uses the mirror image (y -> -y, and the
z/x-axis joints J0, J3, J5 change sign), which keeps disjointness.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mberil_ros.sim.model import INIT_RTM, TABLE_TOP_Z
from mberil_ros.sim.scene import Episode, Obstacle, point_obstacle_distance
from mberil_ros.sim.spaces import LARM_JOINTS, MAX_OBSTACLES, RARM_JOINTS


@dataclass(frozen=True)
class Box:
    """Closed axis-aligned box lo <= x <= hi."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.lo, self.hi)

    def contains(self, x) -> bool:
        x = np.asarray(x, dtype=float)
        lo, hi = np.asarray(self.lo) - 1e-12, np.asarray(self.hi) + 1e-12
        return bool(np.all(x >= lo) and np.all(x <= hi))

    def disjoint(self, other: Box) -> bool:
        """True when some axis' intervals do not overlap (then no point lies in both)."""
        axes = zip(self.lo, self.hi, other.lo, other.hi, strict=True)
        return any(h1 < l2 or h2 < l1 for l1, h1, l2, h2 in axes)

    def clip(self, x) -> np.ndarray:
        return np.clip(np.asarray(x, dtype=float), self.lo, self.hi)


@dataclass(frozen=True)
class Suite:
    name: str
    init_offset: Box  # 6 offsets (rad) from init_rtm, RARM_JOINT0..5 order
    target: Box  # hand target xyz
    # obstacle parameters: (x, y, z_center, half_size) of the obstacle centre and half size
    obstacle: Box
    obstacle_count: tuple[int, int]  # inclusive
    time_limit: float = 8.0  # s


TARGET = Box((0.30, -0.40, 0.00), (0.48, -0.10, 0.14))
_INIT_TRAIN = Box((-0.12,) * 6, (0.12,) * 6)
# Outward yaw (J0) and forward raise (J1) beyond train's +-0.12 rad.
_INIT_HELDOUT = Box((-0.32, -0.32, -0.12, -0.12, -0.12, -0.12),
                    (-0.18, -0.18, 0.12, 0.12, 0.12, 0.12))
# x, y, z_center, half_size. Boxes stand on the table (their centre z fixes their height).
_OBST_TRAIN = Box((0.24, -0.46, -0.05, 0.020), (0.50, -0.04, 0.03, 0.035))
# (z_center >= -0.05 keeps every sphere, radius <= 0.05, clear of the table top at -0.10.)
_OBST_HELDOUT = Box((0.24, -0.46, -0.05, 0.040), (0.50, -0.04, 0.03, 0.050))

SUITES: dict[str, Suite] = {
    "train": Suite("train", _INIT_TRAIN, TARGET, _OBST_TRAIN, (0, MAX_OBSTACLES)),
    "heldout_init": Suite("heldout_init", _INIT_HELDOUT, TARGET, _OBST_TRAIN, (0, MAX_OBSTACLES)),
    "heldout_obstacles": Suite(
        "heldout_obstacles", _INIT_TRAIN, TARGET, _OBST_HELDOUT, (2, MAX_OBSTACLES)
    ),
}

# An obstacle must leave the hand this much room around its target (the hand block hangs
# ~6 cm off the flange) and the initial arm this much room.
TARGET_CLEARANCE = 0.08
START_CLEARANCE = 0.04
_MIRROR_JOINT_SIGN = np.array([-1.0, 1.0, 1.0, -1.0, 1.0, -1.0])  # z, y, y, z, y, x axes


def _mirror_y(v) -> np.ndarray:
    v = np.array(v, dtype=float)
    v[1] = -v[1]
    return v


def obstacle_from_params(params: np.ndarray, kind: str, side: str = "right") -> Obstacle:
    """Turn a point of a suite's obstacle box into an Obstacle (boxes stand on the table)."""
    x, y, zc, h = (float(v) for v in params)
    if side == "left":
        y = -y
    if kind == "sphere":
        return Obstacle.sphere((x, y, zc), h)
    height = 2.0 * (zc - TABLE_TOP_Z)
    return Obstacle.box((x, y, zc), (2 * h, 2 * h, height))


def obstacle_params(ob: Obstacle, side: str = "right") -> np.ndarray:
    """Inverse of obstacle_from_params: the (x, y, z_center, half_size) point."""
    y = -ob.position[1] if side == "left" else ob.position[1]
    return np.array([ob.position[0], y, ob.position[2], ob.half_extents[0]])


def sample_episode(
    suite: Suite,
    arm: str,
    rng: np.random.Generator,
    start_clearance: Callable[[dict[str, float], Obstacle | None], float],
    hand_start: Callable[[dict[str, float]], dict[str, np.ndarray]],
) -> Episode:
    """Draw one episode. ``start_clearance(joints, ob)`` is the distance between the robot at
    ``joints`` and obstacle ``ob`` (with ob None: the robot's own clearance, negative on
    self/table contact); ``hand_start(joints)`` gives the hand positions there."""
    sides = ("right", "left") if arm == "both" else (arm,)
    for _ in range(100):
        joints: dict[str, float] = {}
        for side in sides:
            off = suite.init_offset.sample(rng)
            names = RARM_JOINTS if side == "right" else LARM_JOINTS
            if side == "left":
                off = off * _MIRROR_JOINT_SIGN
            for name, o in zip(names, off, strict=True):
                joints[name] = INIT_RTM[name] + float(o)
        if start_clearance(joints, None) > 0.005:
            break
    else:  # pragma: no cover - the boxes are small; 100 rejections would be a regression
        raise RuntimeError(f"suite {suite.name}: no collision-free initial configuration")
    targets = {
        s: tuple(float(v) for v in (suite.target.sample(rng) if s == "right" else
                                   _mirror_y(suite.target.sample(rng))))
        for s in sides
    }
    starts = hand_start(joints)
    count = int(rng.integers(suite.obstacle_count[0], suite.obstacle_count[1] + 1))
    obstacles: list[Obstacle] = []
    attempts = 0
    while len(obstacles) < count and attempts < 200:
        attempts += 1
        side = sides[int(rng.integers(len(sides)))]
        params = suite.obstacle.sample(rng)
        if rng.random() < 0.9:
            # Place it near the start->target line so that obstacles are usually in the way.
            a, b = starts[side], np.asarray(targets[side])
            p = a + rng.uniform(0.3, 0.75) * (b - a) + rng.normal(0.0, 0.03, 3)
            if side == "left":
                p = _mirror_y(p)
            params[:2] = p[:2]
            params = suite.obstacle.clip(params)
        kind = "sphere" if rng.random() < 0.35 else "box"
        ob = obstacle_from_params(params, kind, side)
        if any(point_obstacle_distance(np.asarray(t), ob) < TARGET_CLEARANCE
               for t in targets.values()):
            continue
        if any(np.linalg.norm(np.subtract(ob.position[:2], o.position[:2])) < ob.radius + o.radius
               for o in obstacles):
            continue
        if start_clearance(joints, ob) < START_CLEARANCE:
            continue
        obstacles.append(ob)
    return Episode(arm=arm, initial_joints=joints, targets=targets, obstacles=tuple(obstacles),
                   suite=suite.name)
