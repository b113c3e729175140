"""Observation and action layouts of the reaching task (the fixed contract, DESIGN.md §7).

Other components (sim_node, recorder, bag -> dataset converter, policy node) build and read
these vectors by the names below, never by hand-counted offsets.

Right arm (default), observation of 27 floats:

    =========  =====  ======================================================
    slice      size   content
    =========  =====  ======================================================
    QPOS       6      RARM_JOINT0..5 positions (rad)
    QVEL       6      RARM_JOINT0..5 velocities (rad/s)
    GOAL       3      right-hand goal xyz (m, WAIST frame)
    OBSTACLES  12     MAX_OBSTACLES x (x, y, z, present); absent slots all 0
    =========  =====  ======================================================

Action: 6 absolute joint position targets for RARM_JOINT0..5 (rad), sent at 50 Hz.
Left arm alone: the same with LARM_JOINT0..5 and the left-hand goal.

Both arms, observation of 42 floats: QPOS 12 (RARM then LARM), QVEL 12 (same order),
GOAL 6 (right xyz then left xyz), OBSTACLES 12. Action: 12 targets, RARM then LARM.
"""

from __future__ import annotations

from dataclasses import dataclass

PHYSICS_DT = 0.002  # s, MuJoCo step
CONTROL_HZ = 50
CONTROL_DT = 1.0 / CONTROL_HZ
PHYSICS_STEPS_PER_CONTROL = round(CONTROL_DT / PHYSICS_DT)  # 10

MAX_OBSTACLES = 3
OBSTACLE_FIELDS = 4  # x, y, z, present_flag

RARM_JOINTS: tuple[str, ...] = tuple(f"RARM_JOINT{i}" for i in range(6))
LARM_JOINTS: tuple[str, ...] = tuple(f"LARM_JOINT{i}" for i in range(6))
TORSO_HEAD_JOINTS: tuple[str, ...] = ("CHEST_JOINT0", "HEAD_JOINT0", "HEAD_JOINT1")
ALL_JOINTS: tuple[str, ...] = TORSO_HEAD_JOINTS + RARM_JOINTS + LARM_JOINTS

ARMS = ("right", "left", "both")


@dataclass(frozen=True)
class Layout:
    """Index slices of one arm mode's observation and action vectors."""

    arm: str
    joints: tuple[str, ...]  # action / qpos / qvel order
    hands: tuple[str, ...]  # "right" and/or "left", goal order
    qpos: slice
    qvel: slice
    goal: slice
    obstacles: slice
    obs_dim: int
    act_dim: int


def layout(arm: str = "right") -> Layout:
    """The layout for ``arm`` in {"right", "left", "both"}."""
    if arm == "right":
        joints, hands = RARM_JOINTS, ("right",)
    elif arm == "left":
        joints, hands = LARM_JOINTS, ("left",)
    elif arm == "both":
        joints, hands = RARM_JOINTS + LARM_JOINTS, ("right", "left")
    else:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    n = len(joints)
    g = 3 * len(hands)
    o = MAX_OBSTACLES * OBSTACLE_FIELDS
    return Layout(
        arm=arm,
        joints=joints,
        hands=hands,
        qpos=slice(0, n),
        qvel=slice(n, 2 * n),
        goal=slice(2 * n, 2 * n + g),
        obstacles=slice(2 * n + g, 2 * n + g + o),
        obs_dim=2 * n + g + o,
        act_dim=n,
    )


# The default right-arm contract, as module constants for readers that want plain names.
RIGHT = layout("right")
BOTH = layout("both")
OBS_DIM = RIGHT.obs_dim  # 27
ACT_DIM = RIGHT.act_dim  # 6
QPOS = RIGHT.qpos
QVEL = RIGHT.qvel
GOAL = RIGHT.goal
OBSTACLES = RIGHT.obstacles
