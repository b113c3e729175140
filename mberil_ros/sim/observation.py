"""Assemble the task's observation vector (layouts in spaces.py) from named quantities.

One builder serves the in-process task, the ROS demonstrator and the policy node, so an
observation assembled from /joint_states + task topics is the same vector the task produces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mberil_ros.sim.spaces import MAX_OBSTACLES, OBSTACLE_FIELDS, Layout


def build_observation(
    layout: Layout,
    positions: Mapping[str, float],
    velocities: Mapping[str, float],
    goals: Mapping[str, Sequence[float]],
    obstacle_positions: Sequence[Sequence[float]],
) -> np.ndarray:
    """``goals`` maps "right"/"left" to xyz; at most MAX_OBSTACLES obstacle positions."""
    if len(obstacle_positions) > MAX_OBSTACLES:
        raise ValueError(f"{len(obstacle_positions)} obstacles, at most {MAX_OBSTACLES} fit")
    obs = np.zeros(layout.obs_dim)
    obs[layout.qpos] = [positions[n] for n in layout.joints]
    obs[layout.qvel] = [velocities[n] for n in layout.joints]
    obs[layout.goal] = np.concatenate([np.asarray(goals[h], dtype=float) for h in layout.hands])
    slots = obs[layout.obstacles].reshape(MAX_OBSTACLES, OBSTACLE_FIELDS)
    for i, position in enumerate(obstacle_positions):
        slots[i, :3] = position
        slots[i, 3] = 1.0
    obs[layout.obstacles] = slots.reshape(-1)
    return obs
