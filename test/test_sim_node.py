"""sim_node over DDS: state streaming, commands (forward and trajectory), reset, bad input."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from ros_helpers import require_rclpy, spin_until, start_node, stop_node

from mberil_ros.sim.trajectory import TrajectoryInterpolator

require_rclpy()

import rclpy  # noqa: E402
from builtin_interfaces.msg import Duration  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from mberil_ros.sim.layouts import episode_from_dict  # noqa: E402
from mberil_ros.sim.obstacle_markers import obstacles_from_markers  # noqa: E402
from mberil_ros.sim.spaces import MAX_OBSTACLES  # noqa: E402

ARM = [f"RARM_JOINT{i}" for i in range(6)] + [f"LARM_JOINT{i}" for i in range(6)]


def trajectory(points: list[tuple[float, list[float]]], names=("RARM_JOINT0",)) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(names))
    for t, positions in points:
        msg.points.append(JointTrajectoryPoint(
            positions=positions, time_from_start=Duration(sec=int(t), nanosec=int(t % 1 * 1e9))))
    return msg


def test_trajectory_interpolation_like_the_controller():
    interp = TrajectoryInterpolator.from_message(
        trajectory([(1.0, [1.0]), (2.0, [3.0])]), now=10.0, current={"RARM_JOINT0": 0.0})
    assert interp.sample(10.0)["RARM_JOINT0"] == 0.0  # starts from the held state
    assert interp.sample(10.5)["RARM_JOINT0"] == pytest.approx(0.5)
    assert interp.sample(11.5)["RARM_JOINT0"] == pytest.approx(2.0)
    assert interp.sample(99.0)["RARM_JOINT0"] == pytest.approx(3.0)  # holds the last point
    with pytest.raises(ValueError, match="not increasing"):
        TrajectoryInterpolator.from_message(trajectory([(1.0, [1.0]), (0.5, [3.0])]), 0.0,
                                            {"RARM_JOINT0": 0.0})
    with pytest.raises(ValueError, match="unknown joints"):
        TrajectoryInterpolator.from_message(trajectory([(1.0, [1.0])], names=("NOPE",)), 0.0,
                                            {"RARM_JOINT0": 0.0})


@pytest.fixture
def sim(tmp_path):
    proc = start_node("mberil_ros.nodes.sim_node", {"seed": 3, "real_time_factor": 2.0},
                      tmp_path / "sim.log")
    rclpy.init()
    node = rclpy.create_node("sim_node_test")
    yield node, proc, tmp_path / "sim.log"
    node.destroy_node()
    rclpy.shutdown()
    assert stop_node(proc) == 0


def test_sim_node_topics_commands_and_reset(sim):
    node, proc, log = sim
    states: list[JointState] = []
    clocks: list[float] = []
    markers: list[dict] = []
    node.create_subscription(JointState, "/joint_states", states.append, 100)
    node.create_subscription(Clock, "/clock",
                             lambda m: clocks.append(m.clock.sec + m.clock.nanosec * 1e-9), 100)
    latched = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(String, "/task/episode", lambda m: markers.append(json.loads(m.data)),
                             latched)
    commands = node.create_publisher(Float64MultiArray, "/forward_position_controller/commands", 10)
    trajectories = node.create_publisher(
        JointTrajectory, "/joint_trajectory_controller/joint_trajectory", 10)
    assert spin_until(node, lambda: len(states) > 3), log.read_text()
    assert len(states[-1].name) == 15 and len(states[-1].velocity) == 15
    assert spin_until(node, lambda: bool(markers))  # latched: arrives on its own schedule
    assert markers[0]["event"] == "start"  # auto_start

    def position(name: str) -> float:
        return dict(zip(states[-1].name, states[-1].position, strict=True))[name]

    # Forward command: move RARM_JOINT0 by +0.1 rad and hold the rest.
    held = {n: position(n) for n in ARM}
    goal = dict(held, RARM_JOINT0=held["RARM_JOINT0"] + 0.1)
    for _ in range(40):
        commands.publish(Float64MultiArray(data=[goal[n] for n in ARM]))
        spin_until(node, lambda: False, timeout=0.02)
    assert position("RARM_JOINT0") == pytest.approx(goal["RARM_JOINT0"], abs=5e-3)

    # NaN and wrong-size commands are ignored: the arm holds.
    before = position("RARM_JOINT0")
    commands.publish(Float64MultiArray(data=[float("nan")] * 12))
    commands.publish(Float64MultiArray(data=[0.0] * 5))
    spin_until(node, lambda: False, timeout=0.5)
    assert position("RARM_JOINT0") == pytest.approx(before, abs=2e-3)
    assert "NaN" in log.read_text() and "expected 12" in log.read_text()

    # Trajectory: RARM_JOINT1 to -0.3 over 0.4 s.
    trajectories.publish(trajectory([(0.4, [-0.3])], names=("RARM_JOINT1",)))
    spin_until(node, lambda: abs(position("RARM_JOINT1") + 0.3) < 5e-3, timeout=10)
    assert position("RARM_JOINT1") == pytest.approx(-0.3, abs=5e-3)

    # Reset: new episode at the next seed, time keeps running forward.
    client = node.create_client(Trigger, "/sim_node/reset")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    assert spin_until(node, future.done)
    info = json.loads(future.result().message)
    assert info["seed"] == 4 and info["episode"] == 1
    assert info["layout"]["arm"] == "right"
    t_reset = time.monotonic()
    spin_until(node, lambda: time.monotonic() - t_reset > 0.3)
    assert np.all(np.diff(clocks) > 0), "sim time must never go backwards"
    events = [(m["event"], m["episode"]) for m in markers]
    assert ("end", 0) in events and ("start", 1) in events


LAYOUTS = """
layouts:
  - target: [0.35, -0.20, 0.05]
    obstacles:
      - {type: box, position: [0.30, -0.10, 0.05], size: [0.05, 0.06, 0.20]}
      - {type: sphere, position: [0.25, -0.25, 0.10], radius: 0.04}
  - target: [0.40, -0.15, 0.10]
    obstacles:
      - {type: sphere, position: [0.30, -0.05, 0.12], radius: 0.03}
"""


def test_obstacles_are_rviz_markers_that_follow_the_episode(tmp_path):
    layouts = tmp_path / "layouts.yaml"
    layouts.write_text(LAYOUTS)
    log = tmp_path / "sim.log"
    proc = start_node("mberil_ros.nodes.sim_node",
                      {"layouts_file": str(layouts), "real_time_factor": 2.0}, log)
    rclpy.init()
    node = rclpy.create_node("obstacle_markers_test")
    arrays: list[MarkerArray] = []
    layouts_seen: list[dict] = []
    latched = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    try:
        node.create_subscription(MarkerArray, "/task/obstacles", arrays.append, latched)
        node.create_subscription(String, "/task/layout",
                                 lambda m: layouts_seen.append(json.loads(m.data)), latched)
        assert spin_until(node, lambda: arrays and layouts_seen), log.read_text()
        client = node.create_client(Trigger, "/sim_node/reset")
        assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(Trigger.Request())
        assert spin_until(node, lambda: future.done() and len(arrays) >= 2)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        code = stop_node(proc)
    assert code == 0, log.read_text()

    for array, info in zip(arrays, layouts_seen, strict=True):
        markers = array.markers
        # What RViz needs: the WAIST frame, a namespace, a colour it can see; stale markers
        # of a previous episode go with the leading DELETEALL.
        assert markers[0].action == Marker.DELETEALL
        assert all(m.header.frame_id == "WAIST" and m.ns == "obstacles" for m in markers)
        adds = markers[1:]
        assert [m.id for m in adds] == list(range(len(adds)))  # id = slot index
        assert all(m.action == Marker.ADD and m.color.a > 0 for m in adds)
        episode = episode_from_dict(info["layout"])
        assert obstacles_from_markers(markers, MAX_OBSTACLES) == list(episode.obstacles)
    first, second = arrays[0].markers[1:], arrays[1].markers[1:]
    assert [m.type for m in first] == [Marker.CUBE, Marker.SPHERE]
    assert [(m.scale.x, m.scale.y, m.scale.z) for m in first] == [
        pytest.approx((0.05, 0.06, 0.20)), pytest.approx((0.08, 0.08, 0.08))]
    assert len(second) == 1 and second[0].type == Marker.SPHERE


def test_a_success_settles_for_settle_ticks_before_the_episode_ends():
    """The end marker comes settle_ticks after the first success (the hand coming to rest,
    as in generated datasets); a collision while settling ends the episode at once."""
    from types import SimpleNamespace

    from mberil_ros.nodes.sim_node import SimNode

    def node(settle: int) -> SimpleNamespace:
        task = SimpleNamespace(is_done=lambda i: i["success"] or i["collision"])
        return SimpleNamespace(task=task, success_info=None, settle_left=0,
                               get_parameter=lambda name: SimpleNamespace(value=settle))

    moving = {"success": False, "collision": False}
    reached = {"success": True, "collision": False}
    n = node(3)
    assert SimNode._episode_outcome(n, moving) is None
    assert SimNode._episode_outcome(n, reached) is None  # settling starts
    assert SimNode._episode_outcome(n, dict(moving)) is None
    assert SimNode._episode_outcome(n, dict(reached)) is None
    assert SimNode._episode_outcome(n, dict(reached)) is reached  # 3 ticks later

    n = node(3)
    SimNode._episode_outcome(n, reached)
    assert SimNode._episode_outcome(n, {"success": False, "collision": True}) is reached
    assert SimNode._episode_outcome(node(0), reached) is reached  # settle_ticks 0: at once


def test_a_layout_the_arm_cannot_run_stops_the_node_with_one_line(tmp_path):
    layouts = tmp_path / "scene.yaml"
    layouts.write_text("layouts:\n  - target: [0.38, -0.25, 0.06]\n    obstacles:\n"
                       "      - {type: box, position: [0.25, -0.16, 0.05],"
                       " size: [0.2, 0.2, 0.2]}\n")
    log = tmp_path / "sim.log"
    proc = start_node("mberil_ros.nodes.sim_node", {"layouts_file": str(layouts)}, log)
    assert proc.wait(timeout=60) == 2
    errors = [line for line in log.read_text().splitlines() if "error" in line]
    assert errors == [f"sim_node: error: {layouts}: layouts[0].obstacles[0]: overlaps the arm "
                      f"at its start pose"]


def test_an_episode_waits_for_unmatched_state_readers_and_never_twice_for_the_same(monkeypatch):
    """The graph lists a reader before DDS matches it with the sim's publisher; the first
    state waits for it. A reader that never matches is waited for once, not every episode."""
    from types import SimpleNamespace

    from mberil_ros.nodes import spinning
    from mberil_ros.nodes.sim_node import SimNode

    class Pub:
        def __init__(self, topic: str, matched: int) -> None:
            self.topic_name, self.matched = topic, matched

        def get_subscription_count(self) -> int:
            return self.matched

    class Node:
        _readers = SimNode._readers
        wait = SimNode._wait_for_state_readers

        def __init__(self) -> None:
            self.joint_pub, self.clock_pub = Pub("/joint_states", 1), Pub("/clock", 2)
            self.graph = {"/joint_states": 2, "/clock": 2}
            self._unmatched_readers, self.warnings = {}, []

        def get_subscriptions_info_by_topic(self, topic: str) -> list:
            return [None] * self.graph[topic]

        def get_logger(self):
            return SimpleNamespace(warning=self.warnings.append)

    waited = []
    monkeypatch.setattr(spinning, "wait_until",
                        lambda condition, timeout, period=0.01: waited.append(1) or condition())
    n = Node()
    n.wait()  # /joint_states: 1 of 2 matched -> waited in vain, warned
    assert len(waited) == 2 and len(n.warnings) == 1 and "/joint_states" in n.warnings[0]
    n.wait()  # the same unmatched reader: only /clock is checked
    assert len(waited) == 3 and len(n.warnings) == 1
    n.graph["/joint_states"] = 3  # a new reader appears: wait again
    n.wait()
    assert len(waited) == 5 and len(n.warnings) == 2
    n.joint_pub.matched = 3  # matched late: the reader count is the one given up on, so
    n.wait()  # only /clock is checked, and nothing is warned
    assert len(waited) == 6 and len(n.warnings) == 2
