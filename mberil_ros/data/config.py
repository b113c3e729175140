"""The conversion config (config/dataset.yaml): load, validate, derive the feature layout."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mberil_ros.data.episodes import LABELS
from mberil_ros.data.layout import transition_vectors
from mberil_ros.errors import UserError
from mberil_ros.settings import apply_overrides, from_mapping
from mberil_ros.sim import spaces

EPISODE_RULES = ("auto", "markers", "bag")
FAILED_EXPERT = ("drop", "suboptimal")
RIGHT = list(spaces.RARM_JOINTS)
LEFT = list(spaces.LARM_JOINTS)

# Each topic role has one message type: its decoder is written for that type.
TOPIC_TYPES: dict[str, str] = {
    "joint_states": "sensor_msgs/msg/JointState",
    "commands": "std_msgs/msg/Float64MultiArray",
    "trajectory": "trajectory_msgs/msg/JointTrajectory",
    "goal": "geometry_msgs/msg/PoseStamped",
    "goal_left": "geometry_msgs/msg/PoseStamped",
    "obstacles": "visualization_msgs/msg/MarkerArray",
    "episode": "std_msgs/msg/String",
}

DEFAULT_TOPICS: dict[str, dict[str, Any]] = {
    "joint_states": {"name": spaces.TOPICS["joint_states"], "max_age": 0.1},
    "commands": {"name": spaces.TOPICS["commands"], "max_age": 0.1},
    "trajectory": {"name": spaces.TOPICS["trajectory"], "max_age": 0.5},
    "goal": {"name": spaces.TOPICS["goal"], "max_age": None},
    "goal_left": {"name": spaces.TOPICS["goal_left"], "max_age": None},
    "obstacles": {"name": spaces.TOPICS["obstacles"], "max_age": None},
    "episode": {"name": spaces.TOPICS["episode"], "max_age": None},
}


@dataclass
class TopicConfig:
    role: str
    name: str
    msgtype: str
    max_age: float | None


@dataclass
class DatasetConfig:
    fps: float = 50.0
    arm: str = "right"
    arm_joints: dict[str, list[str]] = field(
        default_factory=lambda: {"right": list(RIGHT), "left": list(LEFT)}
    )
    max_obstacles: int = spaces.MAX_OBSTACLES
    timestamps: str = "receive"
    header_lag: float = 0.5
    action_source: str = "forward"
    controller_joints: list[str] = field(default_factory=lambda: RIGHT + LEFT)
    max_episode_seconds: float = 900.0
    episodes: str = "auto"  # markers | bag | auto (markers when the bag has the topic)
    label: str = "expert"  # label of episodes cut without markers
    split_gap: float | None = None  # without markers: a command pause longer than this (s)
    #   starts a new episode; None: one episode per bag
    failed_expert: str = "drop"  # an expert episode whose end marker says success: false:
    #   drop | suboptimal (kept, relabelled)
    topics: dict[str, TopicConfig] = field(default_factory=dict)

    # ---- derived layout -------------------------------------------------------------------
    @property
    def joints(self) -> list[str]:
        """The controlled joints, in state/action order."""
        arms = ["right", "left"] if self.arm == "both" else [self.arm]
        return [j for a in arms for j in self.arm_joints[a]]

    @property
    def goal_roles(self) -> list[str]:
        return list(spaces.observation_layout(self.arm).goal_roles)

    @property
    def action_role(self) -> str:
        return "commands" if self.action_source == "forward" else "trajectory"

    @property
    def feature_roles(self) -> list[str]:
        """Roles sampled on the grid, in observation order, then the action."""
        roles = ["joint_states", *self.goal_roles]
        if self.max_obstacles > 0:
            roles.append("obstacles")
        return [*roles, self.action_role]

    def state_names(self) -> list[str]:
        """observation.state names, from the task contract (sim/spaces.py)."""
        return spaces.state_names(self.joints, self.goal_roles, self.max_obstacles)

    def action_names(self) -> list[str]:
        return [f"{j}.target" for j in self.joints]

    def vectors(self) -> dict[str, list[str]]:
        """The dataset's float32 features and their value names (DatasetWriter)."""
        return transition_vectors(self.state_names(), self.action_names(),
                                  self.environment_names())

    def environment_names(self) -> list[str]:
        """The task values of observation.state (goals, obstacle slots), after the joints':
        LeRobot's observation.environment_state (data/layout.py)."""
        return self.state_names()[2 * len(self.joints):]

    def task_text(self) -> str:
        """The dataset's LeRobot task string (language conditioning); one per arm mode."""
        if self.arm == "both":
            return "reach the targets with both hands"
        return f"reach the target with the {self.arm} hand"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["topics"] = {
            r: {"name": t.name, "type": t.msgtype, "max_age": t.max_age}
            for r, t in self.topics.items()
        }
        return out


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise UserError(f"{where}: {msg}")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                settings: list[str] | None = None) -> DatasetConfig:
    """Read and validate a dataset config; ``None`` gives the defaults. ``overrides`` replace
    top-level keys; ``settings`` are ``key.sub=value`` items (as for `mberil train`), e.g.
    ``topics.joint_states.name=/robot/joint_states``."""
    raw: dict[str, Any] = {}
    where = "dataset config (defaults)"
    if path is not None:
        where = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise UserError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        _check(isinstance(raw, dict), where, "top level must be a mapping")
    raw = apply_overrides({**raw, **(overrides or {})}, settings or [])
    return config_from_dict(raw, where)


def config_from_dict(raw: dict[str, Any], where: str = "dataset config") -> DatasetConfig:
    cfg = from_mapping(DatasetConfig, {k: v for k, v in raw.items() if k != "topics"},
                       source=where)

    _check(isinstance(cfg.fps, (int, float)) and 0 < cfg.fps <= 10000, where,
           f"fps must be a number in (0, 10000], got {cfg.fps!r}")
    _check(cfg.arm in ("right", "left", "both"), where,
           f"arm must be right, left or both, got {cfg.arm!r}")
    _check(isinstance(cfg.arm_joints, dict), where, "arm_joints must map right/left to names")
    for arm in ("right", "left"):
        names = cfg.arm_joints.get(arm)
        _check(isinstance(names, list) and names and all(isinstance(n, str) for n in names),
               where, f"arm_joints.{arm} must be a non-empty list of joint names")
    _check(len(set(cfg.joints)) == len(cfg.joints), where, f"duplicate joints in {cfg.joints}")
    _check(isinstance(cfg.max_obstacles, int) and 0 <= cfg.max_obstacles <= 64, where,
           f"max_obstacles must be an integer in [0, 64], got {cfg.max_obstacles!r}")
    _check(cfg.timestamps in ("receive", "header"), where,
           f"timestamps must be receive or header, got {cfg.timestamps!r}")
    _check(isinstance(cfg.header_lag, (int, float)) and cfg.header_lag >= 0, where,
           "header_lag must be a number >= 0")
    _check(cfg.action_source in ("forward", "trajectory"), where,
           f"action_source must be forward or trajectory, got {cfg.action_source!r}")
    _check(isinstance(cfg.controller_joints, list) and len(set(cfg.controller_joints))
           == len(cfg.controller_joints), where, "controller_joints must be distinct names")
    if cfg.action_source == "forward":
        missing = [j for j in cfg.joints if j not in cfg.controller_joints]
        _check(not missing, where, f"controller_joints lacks {missing}")
    _check(isinstance(cfg.max_episode_seconds, (int, float)) and cfg.max_episode_seconds > 0,
           where, "max_episode_seconds must be > 0")
    _check(cfg.episodes in EPISODE_RULES, where,
           f"episodes must be one of {EPISODE_RULES}, got {cfg.episodes!r}")
    _check(cfg.label in LABELS, where, f"label must be one of {LABELS}, got {cfg.label!r}")
    _check(cfg.split_gap is None or (isinstance(cfg.split_gap, (int, float))
                                     and cfg.split_gap > 0), where,
           f"split_gap must be null or a number of seconds > 0, got {cfg.split_gap!r}")
    _check(cfg.failed_expert in FAILED_EXPERT, where,
           f"failed_expert must be one of {FAILED_EXPERT}, got {cfg.failed_expert!r}")

    topics_raw = raw.get("topics") or {}
    _check(isinstance(topics_raw, dict), where, "topics must be a mapping")
    bad = sorted(set(topics_raw) - set(TOPIC_TYPES))
    _check(not bad, where, f"unknown topic role(s) {bad}; known: {sorted(TOPIC_TYPES)}")
    for role, default in DEFAULT_TOPICS.items():
        entry = {**default, **(topics_raw.get(role) or {})}
        extra = sorted(set(entry) - {"name", "max_age"})
        _check(not extra, where, f"topics.{role}: unknown key(s) {extra} (name, max_age)")
        name, max_age = entry["name"], entry["max_age"]
        _check(isinstance(name, str) and name.startswith("/"), where,
               f"topics.{role}.name must be an absolute topic name, got {name!r}")
        _check(max_age is None or (isinstance(max_age, (int, float)) and max_age >= 0), where,
               f"topics.{role}.max_age must be null or a number >= 0, got {max_age!r}")
        cfg.topics[role] = TopicConfig(role, name, TOPIC_TYPES[role], max_age)
    used = [cfg.topics[r].name for r in [*cfg.feature_roles, "episode"]]
    _check(len(set(used)) == len(used), where, f"two roles share a topic: {used}")
    return cfg
