"""One decoder per topic role: a batch of raw messages -> a float64 feature matrix."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mberil_ros.data.config import DatasetConfig
from mberil_ros.data.fastdecode import DecodeError, Float64ArrayDecoder, JointStateDecoder
from mberil_ros.sim.observation import obstacle_features
from mberil_ros.sim.obstacle_markers import obstacles_from_markers
from mberil_ros.sim.spaces import OBSTACLE_WIDTH, obstacle_names

Deserialize = Callable[[bytes], object]


class FeatureDecoder:
    """Turns raw messages of one topic into rows of ``width`` float64 values."""

    width: int
    has_header: bool = False
    fields: list[str]  # the message field behind each column, for error messages

    def decode(self, raws: Sequence[bytes]) -> np.ndarray:
        raise NotImplementedError


class _PerMessage(FeatureDecoder):
    """Low-rate types: rosbags deserialization is fast enough."""

    def __init__(self, deserialize: Deserialize) -> None:
        self.deserialize = deserialize

    def decode(self, raws: Sequence[bytes]) -> np.ndarray:
        out = np.empty((len(raws), self.width))
        for i, raw in enumerate(raws):
            try:
                msg = self.deserialize(raw)
            except Exception as exc:  # noqa: BLE001 - rosbags raises several types
                raise DecodeError(i, f"cannot deserialize ({exc})") from None
            try:
                out[i] = self.row(msg)
            except ValueError as exc:
                raise DecodeError(i, str(exc)) from None
        return out

    def row(self, msg: object) -> np.ndarray | list[float]:
        raise NotImplementedError


class JointStateFeature(FeatureDecoder):
    has_header = True

    def __init__(self, joints: Sequence[str], deserialize: Deserialize, ros1: bool) -> None:
        self.inner = JointStateDecoder(joints, deserialize, ros1)
        self.width = 2 * len(joints)
        self.fields = [f"position[{j}]" for j in joints] + [f"velocity[{j}]" for j in joints]

    def decode(self, raws: Sequence[bytes]) -> np.ndarray:
        pos, vel = self.inner.decode(raws)
        return np.concatenate([pos, vel], axis=1)


IDLE_TOLERANCE = 0.01  # rad: an undriven arm's commands may jitter this much, not more


def check_idle(values: np.ndarray, idle: Sequence[str], arm: str) -> None:
    """``values`` (messages x len(idle)) are commands of joints outside the dataset's arm:
    if they move, the recording drove another arm and cutting it out would lose it."""
    if not len(idle) or not len(values):
        return
    moved = np.abs(values - values[0])
    if moved.max() > IDLE_TOLERANCE:
        row, col = np.unravel_index(np.argmax(moved > IDLE_TOLERANCE), moved.shape)
        names = [j for j, m in zip(idle, moved.max(0), strict=True) if m > IDLE_TOLERANCE]
        raise DecodeError(int(row), f"commands move {', '.join(names)} (by up to "
                          f"{moved.max():.3f} rad) but the dataset's arm is {arm}: convert "
                          "with --arm both (or the arm that moves)")


class CommandFeature(FeatureDecoder):
    """Float64MultiArray in controller_joints order -> targets of the configured joints;
    the other arm's columns must hold still (check_idle)."""

    def __init__(self, joints: Sequence[str], controller_joints: Sequence[str],
                 idle: Sequence[str], arm: str, deserialize: Deserialize, ros1: bool) -> None:
        self.inner = Float64ArrayDecoder(len(controller_joints), deserialize, ros1)
        self.cols = [list(controller_joints).index(j) for j in joints]
        self.idle = [j for j in idle if j in controller_joints]
        self.idle_cols = [list(controller_joints).index(j) for j in self.idle]
        self.arm = arm
        self.width = len(joints)
        self.fields = [f"data[{c}] ({j})" for c, j in zip(self.cols, joints, strict=True)]

    def decode(self, raws: Sequence[bytes]) -> np.ndarray:
        full = self.inner.decode(raws)
        check_idle(full[:, self.idle_cols], self.idle, self.arm)
        return full[:, self.cols]


class TrajectoryFeature(_PerMessage):
    has_header = True

    def __init__(self, joints: Sequence[str], idle: Sequence[str], arm: str,
                 deserialize: Deserialize) -> None:
        super().__init__(deserialize)
        self.joints, self.idle, self.arm = list(joints), list(idle), arm
        self.width = len(joints)
        self.fields = [f"points[0].positions[{j}]" for j in joints]
        self._idle_rows: list[np.ndarray] = []

    def decode(self, raws: Sequence[bytes]) -> np.ndarray:
        self._idle_rows = []
        out = super().decode(raws)
        # joints of the other arm a trajectory names must hold still (0 where not named)
        check_idle(np.array(self._idle_rows).reshape(len(raws), -1), self.idle, self.arm)
        return out

    def row(self, msg: object) -> np.ndarray:
        if not msg.points:
            raise ValueError("trajectory has no points")
        positions = np.asarray(msg.points[0].positions, dtype=np.float64)
        if len(positions) != len(msg.joint_names):
            raise ValueError(f"points[0].positions has {len(positions)} values for "
                             f"{len(msg.joint_names)} joint_names")
        index = {name: i for i, name in enumerate(msg.joint_names)}
        missing = [j for j in self.joints if j not in index]
        if missing:
            raise ValueError(f"joint(s) {', '.join(missing)} missing from joint_names")
        self._idle_rows.append(np.array([positions[index[j]] if j in index else 0.0
                                         for j in self.idle]))
        return positions[[index[j] for j in self.joints]]


class GoalFeature(_PerMessage):
    has_header = True
    width = 3
    fields = ["pose.position.x", "pose.position.y", "pose.position.z"]

    def row(self, msg: object) -> list[float]:
        p = msg.pose.position
        return [p.x, p.y, p.z]


class ObstaclesFeature(_PerMessage):
    """MarkerArray -> max_obstacles slots (spaces.OBSTACLE_FIELDS), by the same contract
    (sim/obstacle_markers.py) and slot builder (sim/observation.py) as the live task."""

    def __init__(self, max_obstacles: int, deserialize: Deserialize) -> None:
        super().__init__(deserialize)
        self.max_obstacles = max_obstacles
        self.width = max_obstacles * OBSTACLE_WIDTH
        self.fields = obstacle_names(max_obstacles)

    def row(self, msg: object) -> np.ndarray:
        return obstacle_features(obstacles_from_markers(msg.markers, self.max_obstacles),
                                 self.max_obstacles)


def make_feature(role: str, cfg: DatasetConfig, deserialize: Deserialize,
                 ros1: bool) -> FeatureDecoder:
    if role == "joint_states":
        return JointStateFeature(cfg.joints, deserialize, ros1)
    idle = [j for arm in ("right", "left") for j in cfg.arm_joints[arm] if j not in cfg.joints]
    if role == "commands":
        return CommandFeature(cfg.joints, cfg.controller_joints, idle, cfg.arm, deserialize, ros1)
    if role == "trajectory":
        return TrajectoryFeature(cfg.joints, idle, cfg.arm, deserialize)
    if role in ("goal", "goal_left"):
        return GoalFeature(deserialize)
    if role == "obstacles":
        return ObstaclesFeature(cfg.max_obstacles, deserialize)
    raise ValueError(f"no feature decoder for role {role!r}")
