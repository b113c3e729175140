"""Synthetic NEXTAGE demonstration bags, written with rosbags (tests, benchmarks, examples).

Messages are built from rosbags' typestore classes and serialized by rosbags (CDR for
rosbag2, ROS 1 serialization for .bag), so the bytes are what a real recorder would store.
``demo_messages`` yields a time-ordered stream; callers may filter or edit it before
``write_bag`` to produce broken or unusual bags.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_typestore

from mberil_ros.data.config import LEFT, RIGHT
from mberil_ros.sim.obstacle_markers import ADD, DELETEALL, MARKER_TYPES, NAMESPACE, marker_scale
from mberil_ros.sim.scene import Obstacle

NEXTAGE_JOINTS = ["CHEST_JOINT0", "HEAD_JOINT0", "HEAD_JOINT1", *RIGHT, *LEFT]
NS = 1_000_000_000
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"


@dataclass
class Msg:
    topic: str
    msgtype: str
    t_ns: int  # receive (log) time
    msg: object


class MessageFactory:
    """Builds messages of the types the converter reads, for ROS 1 or ROS 2 type stores."""

    def __init__(self, ros1: bool = False) -> None:
        self.ros1 = ros1
        self.store = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_KILTED)
        self.t = self.store.types

    def serialize(self, msg: object, msgtype: str) -> bytes:
        if self.ros1:
            return bytes(self.store.serialize_ros1(msg, msgtype))
        return bytes(self.store.serialize_cdr(msg, msgtype))

    def header(self, stamp_ns: int, frame_id: str = "") -> object:
        stamp = self.t["builtin_interfaces/msg/Time"](sec=stamp_ns // NS, nanosec=stamp_ns % NS)
        if self.ros1:
            return self.t["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id=frame_id)
        return self.t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def joint_state(self, stamp_ns: int, names: Sequence[str], position: Sequence[float],
                    velocity: Sequence[float], frame_id: str = "") -> object:
        return self.t["sensor_msgs/msg/JointState"](
            header=self.header(stamp_ns, frame_id), name=list(names),
            position=np.asarray(position, dtype=np.float64),
            velocity=np.asarray(velocity, dtype=np.float64),
            effort=np.zeros(0, dtype=np.float64))

    def float64_array(self, values: Sequence[float]) -> object:
        layout = self.t["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
        return self.t["std_msgs/msg/Float64MultiArray"](
            layout=layout, data=np.asarray(values, dtype=np.float64))

    def _point(self, x: float, y: float, z: float) -> object:
        return self.t["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=float(z))

    def _pose(self, xyz: Sequence[float]) -> object:
        quat = self.t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)
        return self.t["geometry_msgs/msg/Pose"](position=self._point(*xyz), orientation=quat)

    def pose_stamped(self, stamp_ns: int, xyz: Sequence[float]) -> object:
        return self.t["geometry_msgs/msg/PoseStamped"](header=self.header(stamp_ns, "WAIST"),
                                                       pose=self._pose(xyz))

    def marker(self, stamp_ns: int, ob: Obstacle | None, slot: int = 0,
               frame_id: str = "WAIST") -> object:
        """An obstacle marker as sim_node publishes it; ``ob=None`` gives the DELETEALL."""
        t = self.t
        extra = {} if self.ros1 else {
            "texture_resource": "", "uv_coordinates": [],
            "texture": t["sensor_msgs/msg/CompressedImage"](
                header=self.header(0), format="", data=np.zeros(0, dtype=np.uint8)),
            "mesh_file": t["visualization_msgs/msg/MeshFile"](
                filename="", data=np.zeros(0, dtype=np.uint8))}
        scale = marker_scale(ob) if ob is not None else (0.0, 0.0, 0.0)
        return t["visualization_msgs/msg/Marker"](
            header=self.header(stamp_ns, frame_id), ns=NAMESPACE, id=slot,
            type=MARKER_TYPES[ob.type] if ob is not None else 0,
            action=ADD if ob is not None else DELETEALL,
            pose=self._pose(ob.position if ob is not None else (0, 0, 0)),
            scale=t["geometry_msgs/msg/Vector3"](x=scale[0], y=scale[1], z=scale[2]),
            color=t["std_msgs/msg/ColorRGBA"](r=0.9, g=0.4, b=0.1, a=0.8),
            lifetime=t["builtin_interfaces/msg/Duration"](sec=0, nanosec=0),
            frame_locked=False, points=[], colors=[], text="", mesh_resource="",
            mesh_use_embedded_materials=False, **extra)

    def marker_array(self, stamp_ns: int, obstacles: Sequence[Obstacle]) -> object:
        """DELETEALL, then one marker per obstacle with id = slot (sim_node's contract)."""
        markers = [self.marker(stamp_ns, None)]
        markers += [self.marker(stamp_ns, ob, slot) for slot, ob in enumerate(obstacles)]
        return self.t["visualization_msgs/msg/MarkerArray"](markers=markers)

    def string(self, text: str) -> object:
        return self.t["std_msgs/msg/String"](data=text)

    def trajectory(self, stamp_ns: int, names: Sequence[str], positions: Sequence[float]
                   ) -> object:
        duration = self.t["builtin_interfaces/msg/Duration"]
        point = self.t["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=np.asarray(positions, dtype=np.float64),
            velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
            time_from_start=duration(sec=0, nanosec=20_000_000))
        return self.t["trajectory_msgs/msg/JointTrajectory"](
            header=self.header(stamp_ns), joint_names=list(names), points=[point])


def write_bag(path: str | Path, messages: Iterable[Msg], storage: str = "mcap",
              ros1: bool | None = None) -> Path:
    """Write ``messages`` to a rosbag2 folder (storage mcap|sqlite3) or a ROS 1 .bag."""
    path = Path(path)
    is_ros1 = storage == "ros1" if ros1 is None else ros1
    factory = MessageFactory(ros1=is_ros1)
    conns: dict[tuple[str, str], object] = {}
    if is_ros1:
        writer = Writer1(path)
    else:
        plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
        writer = Writer2(path, version=9, storage_plugin=plugin)
    with writer:
        for m in messages:
            key = (m.topic, m.msgtype)
            if key not in conns:
                conns[key] = writer.add_connection(m.topic, m.msgtype, typestore=factory.store)
            writer.write(conns[key], m.t_ns, factory.serialize(m.msg, m.msgtype))
    return path


def joint_positions(t_s: float, count: int = len(NEXTAGE_JOINTS)) -> np.ndarray:
    """A smooth, joint-distinct trajectory: ground truth for tests."""
    j = np.arange(count)
    return 0.1 * j + 0.5 * np.sin(0.7 * t_s + j)


def joint_velocities(t_s: float, count: int = len(NEXTAGE_JOINTS)) -> np.ndarray:
    j = np.arange(count)
    return 0.35 * np.cos(0.7 * t_s + j)


def demo_obstacles(episode: int, count: int) -> list[Obstacle]:
    """Ground-truth obstacles of a synthetic episode: boxes at even slots, spheres at odd."""
    out = []
    for i in range(count):
        position = (0.25 + 0.01 * i, -0.1 * i, 0.1 + episode)
        if i % 2:
            out.append(Obstacle.sphere(position, 0.03 + 0.01 * i))
        else:
            out.append(Obstacle.box(position, (0.04 + 0.01 * i, 0.05, 0.2 + 0.01 * episode)))
    return out


def _periodic(start_s: float, stop_s: float, hz: float) -> Iterator[float]:
    k = 0
    while (t := start_s + k / hz) < stop_s:
        yield t
        k += 1


def demo_messages(factory: MessageFactory, *, episodes: int = 2, episode_s: float = 2.0,
                  gap_s: float = 0.5, js_hz: float = 100.0, cmd_hz: float = 50.0,
                  t0_s: float = 100.0, jitter_s: float = 0.0, shuffle_joints: bool = False,
                  obstacles: int = 2, left_goal: bool = False, action: str = "forward",
                  labels: Sequence[str] = ("expert", "suboptimal"), seed: int = 0,
                  driven: Sequence[str] | None = None) -> Iterator[Msg]:
    """A time-ordered stream: joint states, commands, goal/obstacles and episode markers.

    Header stamps carry the nominal time; receive times add up to ``jitter_s`` of noise
    (below half a period, so each topic stays in order). Commands move the ``driven`` joints
    (default: the right arm, both arms with ``left_goal``); the others hold their first value,
    as a one-arm demonstrator's commands do.
    """
    rng = np.random.default_rng(seed)
    f = factory
    end_s = t0_s + episodes * (episode_s + gap_s)
    ctrl = [*RIGHT, *LEFT]
    driven = set(driven if driven is not None else ctrl if left_goal else RIGHT)
    idle = np.array([j not in driven for j in ctrl])
    hold = joint_positions(t0_s - 0.5)[3:]

    def jit(t: float) -> int:
        noise = rng.uniform(-jitter_s, jitter_s) if jitter_s else 0.0
        return int(round((t + noise) * NS))

    def joint_states() -> Iterator[Msg]:
        n = len(NEXTAGE_JOINTS)
        for t in _periodic(t0_s - 0.5, end_s, js_hz):
            order = rng.permutation(n) if shuffle_joints else np.arange(n)
            pos, vel = joint_positions(t)[order], joint_velocities(t)[order]
            names = [NEXTAGE_JOINTS[i] for i in order]
            msg = f.joint_state(int(round(t * NS)), names, pos, vel)
            yield Msg("/joint_states", "sensor_msgs/msg/JointState", jit(t), msg)

    def commands() -> Iterator[Msg]:
        for t in _periodic(t0_s - 0.5, end_s, cmd_hz):
            # the command aims a little ahead of the current state
            target = joint_positions(t + 0.05)[3:]  # RARM then LARM, controller order
            target[idle] = hold[idle]
            if action == "forward":
                yield Msg("/forward_position_controller/commands",
                          "std_msgs/msg/Float64MultiArray", jit(t), f.float64_array(target))
            else:
                order = rng.permutation(len(ctrl)) if shuffle_joints else np.arange(len(ctrl))
                msg = f.trajectory(int(round(t * NS)), [ctrl[i] for i in order], target[order])
                yield Msg("/joint_trajectory_controller/joint_trajectory",
                          "trajectory_msgs/msg/JointTrajectory", jit(t), msg)

    def task() -> Iterator[Msg]:
        for ep in range(episodes):
            start = t0_s + ep * (episode_s + gap_s)
            setup = int(round((start - 0.1) * NS))
            goal = [0.3 + 0.01 * ep, -0.2, 0.05 * ep]
            yield Msg("/task/goal", "geometry_msgs/msg/PoseStamped", setup,
                      f.pose_stamped(setup, goal))
            if left_goal:
                yield Msg("/task/goal_left", "geometry_msgs/msg/PoseStamped", setup + 1,
                          f.pose_stamped(setup + 1, [0.3, 0.2, 0.1 * ep]))
            yield Msg("/task/obstacles", MARKER_ARRAY, setup + 2,
                      f.marker_array(setup + 2, demo_obstacles(ep, obstacles)))
            label = labels[ep % len(labels)]
            marker = {"event": "start", "episode": ep, "label": label, "demonstrator":
                      "scripted" if label == "expert" else "noisy", "suite": "train",
                      "seed": 1000 + ep, "target": goal}
            yield Msg("/task/episode", "std_msgs/msg/String", int(round(start * NS)),
                      f.string(json.dumps(marker)))
            end = {"event": "end", "episode": ep, "success": label == "expert"}
            yield Msg("/task/episode", "std_msgs/msg/String",
                      int(round((start + episode_s) * NS)), f.string(json.dumps(end)))

    yield from heapq.merge(joint_states(), commands(), task(), key=lambda m: m.t_ns)
