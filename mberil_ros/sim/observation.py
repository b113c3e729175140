"""Assemble the task's observation vector (layouts in spaces.py) from named quantities.

One builder serves the in-process task, the ROS demonstrator, the policy node and the bag
converter (``obstacle_features`` from markers), so an observation assembled from
/joint_states + task topics is the same vector the task produces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mberil_ros.sim.scene import Obstacle
from mberil_ros.sim.spaces import (
    MAX_OBSTACLES,
    OB_HALF_EXTENTS,
    OB_IS_SPHERE,
    OB_POSITION,
    OB_PRESENT,
    OBSTACLE_WIDTH,
    ObservationLayout,
)


def obstacle_features(obstacles: Sequence[Obstacle], max_obstacles: int = MAX_OBSTACLES
                      ) -> np.ndarray:
    """``max_obstacles`` slots of OBSTACLE_FIELDS, flattened; slots past the obstacles are 0."""
    if len(obstacles) > max_obstacles:
        raise ValueError(f"{len(obstacles)} obstacles, at most {max_obstacles} fit")
    slots = np.zeros((max_obstacles, OBSTACLE_WIDTH))
    for slot, ob in zip(slots, obstacles, strict=False):
        if ob.type not in ("box", "sphere"):
            raise ValueError(f"obstacle type must be box or sphere, got {ob.type!r}")
        slot[OB_POSITION] = ob.position
        slot[OB_HALF_EXTENTS] = ob.half_extents
        slot[OB_IS_SPHERE] = 1.0 if ob.type == "sphere" else 0.0
        slot[OB_PRESENT] = 1.0
    return slots.reshape(-1)


def obstacles_from_features(slots: np.ndarray) -> list[Obstacle]:
    """Inverse of ``obstacle_features``: the obstacles of the present slots, in slot order."""
    out = []
    for slot in np.asarray(slots, dtype=float).reshape(-1, OBSTACLE_WIDTH):
        if slot[OB_PRESENT] < 0.5:
            break
        kind = "sphere" if slot[OB_IS_SPHERE] > 0.5 else "box"
        out.append(Obstacle(kind, tuple(slot[OB_POSITION]), tuple(2 * slot[OB_HALF_EXTENTS])))
    return out


def build_observation(
    layout: ObservationLayout,
    positions: Mapping[str, float],
    velocities: Mapping[str, float],
    goals: Mapping[str, Sequence[float]],
    obstacles: Sequence[Obstacle],
) -> np.ndarray:
    """``goals`` maps "right"/"left" to xyz; at most MAX_OBSTACLES obstacles."""
    obs = np.zeros(layout.obs_dim)
    obs[layout.qpos] = [positions[n] for n in layout.joints]
    obs[layout.qvel] = [velocities[n] for n in layout.joints]
    obs[layout.goal] = np.concatenate([np.asarray(goals[h], dtype=float) for h in layout.hands])
    obs[layout.obstacles] = obstacle_features(obstacles)
    return obs
