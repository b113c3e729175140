"""What one episode is made of: initial joints, hand targets, obstacles (docs/task.md).

Positions are metres in the WAIST frame; an obstacle's ``size`` is its full edge lengths
(for a sphere: the diameter, three times), matching the layouts YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Obstacle:
    type: str  # "box" | "sphere"
    position: tuple[float, float, float]
    size: tuple[float, float, float]  # full edge lengths; a sphere's are its diameter

    @property
    def half_extents(self) -> np.ndarray:
        return np.asarray(self.size, dtype=float) / 2.0

    @property
    def radius(self) -> float:
        """Sphere radius, or the box's bounding-sphere radius."""
        h = self.half_extents
        return float(h[0]) if self.type == "sphere" else float(np.linalg.norm(h))

    @property
    def top(self) -> float:
        return float(self.position[2] + self.half_extents[2])

    @staticmethod
    def sphere(position, radius: float) -> Obstacle:
        d = 2.0 * float(radius)
        return Obstacle("sphere", tuple(float(v) for v in position), (d, d, d))

    @staticmethod
    def box(position, size) -> Obstacle:
        return Obstacle("box", tuple(float(v) for v in position), tuple(float(v) for v in size))


@dataclass(frozen=True)
class Episode:
    """Everything ``ReachingTask.reset`` needs to set up one episode."""

    arm: str  # right | left | both
    initial_joints: dict[str, float]  # joints not named start at init_rtm
    targets: dict[str, tuple[float, float, float]]  # "right"/"left" -> xyz
    obstacles: tuple[Obstacle, ...] = ()
    name: str = ""
    suite: str = ""
    meta: dict = field(default_factory=dict)


def point_obstacle_distance(p: np.ndarray, ob: Obstacle) -> float:
    """Euclidean distance from point ``p`` to the obstacle's surface (negative inside)."""
    c = np.asarray(ob.position, dtype=float)
    if ob.type == "sphere":
        return float(np.linalg.norm(p - c) - ob.half_extents[0])
    q = np.abs(p - c) - ob.half_extents
    outside = np.linalg.norm(np.maximum(q, 0.0))
    inside = min(float(np.max(q)), 0.0)
    return float(outside + inside)


def points_obstacle_distance(points: np.ndarray, ob: Obstacle) -> np.ndarray:
    """``point_obstacle_distance`` for many points (n, 3) at once."""
    c, h = np.asarray(ob.position, dtype=float), ob.half_extents
    if ob.type == "sphere":
        return np.linalg.norm(points - c, axis=1) - h[0]
    q = np.abs(points - c) - h
    return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(1), 0.0)


def footprints_apart(a: Obstacle, b: Obstacle, gap: float = 0.0) -> bool:
    """The two obstacles' footprints (bounding circles in xy) are at least ``gap`` apart."""
    d = float(np.linalg.norm(np.subtract(a.position[:2], b.position[:2])))
    return d - a.radius - b.radius >= gap


def segment_obstacle_distance(a: np.ndarray, b: np.ndarray, ob: Obstacle, n: int = 12) -> float:
    """Smallest distance from the segment a-b to the obstacle (sampled; n points suffice for
    the few-cm obstacles and ~0.3 m segments of this task)."""
    ts = np.linspace(0.0, 1.0, n)
    return min(point_obstacle_distance(a + t * (b - a), ob) for t in ts)
