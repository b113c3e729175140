"""The task contract: joint groups, hand links, ROS topic names, timing, and the observation
and action layouts of the reaching task.

Every component (sim_node, demonstrator, recorder, bag -> dataset converter, trainer,
runtime) imports these names and builds and reads the vectors by the names below, never by
hand-counted offsets; docs/observation.md has the same table for readers outside the code.

Right arm (default), observation of 39 floats:

    =========  =====  ======================================================
    slice      size   content
    =========  =====  ======================================================
    QPOS       6      RARM_JOINT0..5 positions (rad)
    QVEL       6      RARM_JOINT0..5 velocities (rad/s)
    GOAL       3      right-hand goal xyz (m, WAIST frame)
    OBSTACLES  24     MAX_OBSTACLES slots of OBSTACLE_FIELDS (below); absent slots all 0
    =========  =====  ======================================================

One obstacle slot (OBSTACLE_FIELDS, in order):

    x, y, z       centre (m, WAIST frame)
    hx, hy, hz    half-extents (m); a sphere has its radius in all three
    is_sphere     1.0 sphere, 0.0 box
    present       1.0 for an obstacle, 0.0 for an empty slot (then every field is 0)

Action: 6 absolute joint position targets for RARM_JOINT0..5 (rad), sent at 50 Hz.
Left arm alone: the same with LARM_JOINT0..5 and the left-hand goal.

Both arms, observation of 54 floats: QPOS 12 (RARM then LARM), QVEL 12 (same order),
GOAL 6 (right xyz then left xyz), OBSTACLES 24. Action: 12 targets, RARM then LARM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PHYSICS_DT = 0.002  # s, MuJoCo step
CONTROL_HZ = 50
CONTROL_DT = 1.0 / CONTROL_HZ
PHYSICS_STEPS_PER_CONTROL = round(CONTROL_DT / PHYSICS_DT)  # 10

# A demonstration goes on this many ticks after its first success (the hand coming to rest
# on the target): 2 s, so a policy with a history (Mamba) sees the arm held still there and
# holds it too, instead of drifting once it has arrived (docs/learning.md)
SETTLE_TICKS = 100

MAX_OBSTACLES = 3
OBSTACLE_FIELDS: tuple[str, ...] = ("x", "y", "z", "hx", "hy", "hz", "is_sphere", "present")
OBSTACLE_WIDTH = len(OBSTACLE_FIELDS)
# Column offsets inside one slot, so builders never count by hand.
OB_POSITION = slice(0, 3)
OB_HALF_EXTENTS = slice(3, 6)
OB_IS_SPHERE = OBSTACLE_FIELDS.index("is_sphere")
OB_PRESENT = OBSTACLE_FIELDS.index("present")

RARM_JOINTS: tuple[str, ...] = tuple(f"RARM_JOINT{i}" for i in range(6))
LARM_JOINTS: tuple[str, ...] = tuple(f"LARM_JOINT{i}" for i in range(6))
TORSO_HEAD_JOINTS: tuple[str, ...] = ("CHEST_JOINT0", "HEAD_JOINT0", "HEAD_JOINT1")
ALL_JOINTS: tuple[str, ...] = TORSO_HEAD_JOINTS + RARM_JOINTS + LARM_JOINTS

# The ROS topics of the task, by role (the converter's roles; node parameters and
# config/dataset.yaml start from these names).
TOPICS: dict[str, str] = {
    "joint_states": "/joint_states",  # sensor_msgs/JointState, by joint name
    "commands": "/forward_position_controller/commands",  # std_msgs/Float64MultiArray
    "trajectory": "/joint_trajectory_controller/joint_trajectory",  # JointTrajectory
    "goal": "/task/goal",  # geometry_msgs/PoseStamped: the (first) driven hand's target
    "goal_left": "/task/goal_left",  # the left hand's target with arm both
    "obstacles": "/task/obstacles",  # visualization_msgs/MarkerArray (docs/observation.md)
    "episode": "/task/episode",  # std_msgs/String: JSON episode markers
    "layout": "/task/layout",  # std_msgs/String: JSON episode geometry (sim_node)
    "clock": "/clock",  # rosgraph_msgs/Clock from the simulator
}

ARMS = ("right", "left", "both")
# The hand point of each arm: the JOINT5_Link origin (the flange), where goals are reached.
HAND_LINKS = {"right": "RARM_JOINT5_Link", "left": "LARM_JOINT5_Link"}


def obstacle_names(max_obstacles: int = MAX_OBSTACLES) -> list[str]:
    """Names of the obstacle slot values, e.g. ``obstacle0.hx``."""
    return [f"obstacle{i}.{f}" for i in range(max_obstacles) for f in OBSTACLE_FIELDS]


def state_names(joints: Sequence[str], goals: Sequence[str],
                max_obstacles: int = MAX_OBSTACLES) -> list[str]:
    """Names of every observation value: ``J.pos``, ``J.vel``, ``GOAL.x``, obstacle slots.

    ``goals`` are the goal topics' roles in observation order ("goal", then "goal_left"
    when both arms are driven), so dataset feature names match the topics they came from.
    """
    names = [f"{j}.pos" for j in joints] + [f"{j}.vel" for j in joints]
    for goal in goals:
        names += [f"{goal}.{c}" for c in "xyz"]
    return names + obstacle_names(max_obstacles)


@dataclass(frozen=True)
class ObservationLayout:
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

    @property
    def goal_roles(self) -> tuple[str, ...]:
        """The goal topics' roles: /task/goal carries the (first) arm's goal."""
        return ("goal", "goal_left")[:len(self.hands)]

    @property
    def state_names(self) -> list[str]:
        return state_names(self.joints, self.goal_roles)


def observation_layout(arm: str = "right") -> ObservationLayout:
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
    o = MAX_OBSTACLES * OBSTACLE_WIDTH
    return ObservationLayout(
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


def arm_of(joints: Sequence[str]) -> str | None:
    """The arm mode whose joints are ``joints`` in order (a policy's joint list), or None."""
    return next((a for a in ARMS if list(observation_layout(a).joints) == list(joints)), None)


# The default (right-arm) and both-arms contracts.
RIGHT = observation_layout("right")
BOTH = observation_layout("both")
