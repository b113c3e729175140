"""policy_node over DDS: it streams clamped commands, holds on stale, NaN and e-stop, and
refuses a checkpoint for other joints; every command it sends is checked against the URDF
position and velocity limits."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from algos_tester import TINY_NET, bc_run, tiny_dataset
from ros_helpers import require_rclpy, spin_until, start_node, stop_node

require_rclpy()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Bool, Float64MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from mberil_ros.runtime import JointLimits  # noqa: E402
from mberil_ros.sim.model import INIT_RTM  # noqa: E402
from mberil_ros.sim.spaces import ALL_JOINTS, LARM_JOINTS, RARM_JOINTS  # noqa: E402

pytestmark = pytest.mark.ros
LATCHED = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
CONTROLLER = list(RARM_JOINTS + LARM_JOINTS)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny BC policy for the right arm, trained a few steps through the real runner."""
    root = tmp_path_factory.mktemp("policy")
    data = tiny_dataset(root, expert=6, suboptimal=2)
    run = bc_run(root, "p", data, 4, "algo.batch_size=2", "algo.data.val_fraction=0.25",
                 "algo.network.backbone=mlp", net=TINY_NET)
    return run / "checkpoints" / "last"


class Bench:
    """The test's side of the wire: publishes the robot's topics, records the commands."""

    def __init__(self) -> None:
        self.node = rclpy.create_node("policy_bench")
        n = self.node
        self.js = n.create_publisher(JointState, "/joint_states", 10)
        self.goal = n.create_publisher(PoseStamped, "/task/goal", LATCHED)
        self.obstacles = n.create_publisher(MarkerArray, "/task/obstacles", LATCHED)
        self.estop = n.create_publisher(Bool, "/policy/estop", 10)
        self.commands: list[list[float]] = []
        self.diagnostics: list[str] = []
        n.create_subscription(Float64MultiArray, "/forward_position_controller/commands",
                              lambda m: self.commands.append(list(m.data)), 100)
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.q = dict(INIT_RTM)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "mberil_ros/policy_node":
                self.diagnostics.append(status.message)

    def publish_task(self) -> None:
        goal = PoseStamped()
        goal.header.frame_id = "WAIST"
        goal.pose.position.x, goal.pose.position.y, goal.pose.position.z = 0.35, -0.25, 0.05
        self.goal.publish(goal)
        self.obstacles.publish(MarkerArray())

    def stream(self, seconds: float, nan: bool = False, pushed: float = 0.0) -> None:
        """/joint_states at 50 Hz; the arm follows the last command (a perfect controller),
        its first joint ``pushed`` rad away from it (moved by hand)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.commands:
                self.q.update(zip(CONTROLLER, self.commands[-1], strict=True))
                self.q[CONTROLLER[0]] += pushed
            msg = JointState(name=list(ALL_JOINTS))
            msg.position = [float("nan") if nan else float(self.q.get(j, 0.0))
                            for j in ALL_JOINTS]
            msg.velocity = [0.0] * len(ALL_JOINTS)
            msg.header.stamp = self.node.get_clock().now().to_msg()
            self.js.publish(msg)
            spin_until(self.node, lambda: False, timeout=0.02)

    def call(self, service: str) -> None:
        client = self.node.create_client(Trigger, service)
        assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(Trigger.Request())
        assert spin_until(self.node, future.done)


def _check_limits(commands: list[list[float]], dt: float) -> None:
    limits = JointLimits.from_urdf(CONTROLLER)
    c = np.array(commands)
    assert np.all(c >= limits.lower - 1e-9) and np.all(c <= limits.upper + 1e-9)
    # right arm: the policy's joints, rate-limited per tick (the left arm holds still)
    step = np.abs(np.diff(c, axis=0))
    assert np.all(step <= limits.velocity * dt + 1e-9), step.max(0)


def test_streams_and_holds_on_stale_nan_and_estop(checkpoint, tmp_path):
    node = start_node("mberil_ros.nodes.policy_node",
                      {"checkpoint": str(checkpoint), "autostart": True, "control_rate": 50.0,
                       "diagnostics_rate": 5.0}, tmp_path / "policy.log")
    rclpy.init()
    bench = Bench()
    try:
        bench.publish_task()
        assert spin_until(bench.node, lambda: bench.node.count_subscribers("/joint_states") > 0,
                          timeout=60), (tmp_path / "policy.log").read_text()
        bench.stream(1.5)
        assert len(bench.commands) > 20, (tmp_path / "policy.log").read_text()
        streamed = len(bench.commands)

        # /joint_states stops: within 3 periods (+ one in flight) the node repeats one command
        spin_until(bench.node, lambda: False, timeout=0.6)
        after = bench.commands[streamed:]
        assert len(after) > 15
        assert len({tuple(c) for c in after}) <= 5 and after[-10:] == [after[-1]] * 10
        assert any("stale" in d for d in bench.diagnostics)
        last = list(after[-1])

        # NaN positions: hold (the same command), an error in the log
        bench.stream(0.5, nan=True)
        assert bench.commands[-1] == last
        bench.stream(0.5)

        # e-stop latches until ~/clear_estop, whatever arrives meanwhile
        bench.estop.publish(Bool(data=True))
        spin_until(bench.node, lambda: False, timeout=0.2)
        bench.estop.publish(Bool(data=False))
        before = len(bench.commands)
        bench.stream(0.6)
        frozen = bench.commands[before + 2:]
        assert frozen and all(c == frozen[0] for c in frozen)
        assert any("e-stop" in d for d in bench.diagnostics)
        bench.call("/policy_node/clear_estop")
        bench.stream(0.5)
        assert bench.diagnostics[-1] == "streaming"

        # an e-stop in which the arm is pushed away: at the clear a fresh history, whose
        # commands start from where the arm is, not from the held command
        before_push = len(bench.commands)
        bench.estop.publish(Bool(data=True))
        bench.stream(0.3, pushed=0.1)
        held = bench.commands[-1]
        cleared = len(bench.commands)
        bench.call("/policy_node/clear_estop")
        bench.stream(0.3, pushed=0.1)
        bench.stream(0.3)
        after = bench.commands[cleared:]
        first = next(i for i, c in enumerate(after) if c != held)
        step = JointLimits.from_urdf(CONTROLLER).velocity[0] / 50
        assert abs(after[first][0] - (held[0] + 0.1)) <= step + 1e-9

        _check_limits(bench.commands[:before_push], 1 / 50)
        _check_limits(after[first:], 1 / 50)
    finally:
        bench.node.destroy_node()
        rclpy.shutdown()
        stop_node(node)
    log = (tmp_path / "policy.log").read_text()
    assert "holding position: /joint_states stale" in log
    assert "non-finite" in log and "e-stop on /policy/estop" in log
    resumed = re.search(r"e-stop cleared: the arm is within ([0-9.]+) rad of the held command",
                        log)
    assert resumed and float(resumed.group(1)) <= 0.02, log
    assert "e-stop cleared: the arm is not where it was held" in log
    assert log.index(resumed.group(0)) < log.index("is not where it was held")
    assert "policy_node:" in log and "missed" in log  # the shutdown report
    assert "1 inference thread(s)" in log  # the default, whatever torch's own is


def test_a_checkpoint_for_other_joints_is_refused(checkpoint, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(checkpoint, other)
    config = json.loads((other / "policy_config.json").read_text())
    config["joint_names"] = list(LARM_JOINTS[:5]) + ["RARM_JOINT5"]
    (other / "policy_config.json").write_text(json.dumps(config))
    node = start_node("mberil_ros.nodes.policy_node",
                      {"checkpoint": str(other), "autostart": True}, tmp_path / "bad.log")
    assert node.wait(timeout=60) == 2
    log = (tmp_path / "bad.log").read_text()
    assert "policy_node: error:" in log and "LARM_JOINT0" in log


@pytest.mark.parametrize("name, value, message", [
    ("thread_priority", 150, "'thread_priority' must be in 0..99"),
    ("inference_threads", -1, "'inference_threads' must be >= 0"),
])
def test_a_scheduling_parameter_out_of_range_is_refused_at_configure(checkpoint, tmp_path,
                                                                     name, value, message):
    node = start_node("mberil_ros.nodes.policy_node",
                      {"checkpoint": str(checkpoint), "autostart": True, name: value},
                      tmp_path / "prio.log")
    assert node.wait(timeout=60) == 2
    log = (tmp_path / "prio.log").read_text()
    assert "policy_node: error:" in log and message in log


def test_mberil_deploy_reaches_targets_and_every_command_is_within_limits(tmp_path):
    """`mberil deploy`: sim_node and policy_node as processes over DDS, a trained policy
    (test/data/policy_reach_mlp), every command on the wire checked against the limits."""
    from ros_helpers import REPO

    policy = REPO / "test" / "data" / "policy_reach_mlp"
    rclpy.init()
    checker = rclpy.create_node("limits_checker")
    commands: list[list[float]] = []
    checker.create_subscription(Float64MultiArray, "/forward_position_controller/commands",
                                lambda m: commands.append(list(m.data)), 1000)
    proc = subprocess.Popen([sys.executable, "-m", "mberil_ros.cli", "deploy", str(policy),
                             "--episodes", "3", "--real-time-factor", "2",
                             "--log-dir", str(tmp_path / "logs")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        spin_until(checker, lambda: proc.poll() is not None, timeout=300)
    finally:
        checker.destroy_node()
        rclpy.shutdown()
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out[-3000:]
    rows = re.findall(r"success (\d)/3", out)
    assert rows and int(rows[-1]) >= 2, out[-3000:]
    # --seed's default 0 is the first evaluation layout, as for `mberil eval`
    assert re.search(r"^\s+0\s+1000000\s", out, re.M), out[-3000:]  # episode 0, seed
    assert "policy_node:" in out and "inference p50/p99" in out
    assert len(commands) > 100
    # positions always within limits; the per-tick rate limit holds between consecutive
    # commands except at the 2 episode starts (the sim reset the arm to another pose and the
    # policy restarts from the measured one)
    limits = JointLimits.from_urdf(CONTROLLER)
    c = np.array(commands)
    assert np.all(c >= limits.lower - 1e-9) and np.all(c <= limits.upper + 1e-9)
    step = np.abs(np.diff(c, axis=0))
    too_fast = np.flatnonzero(~np.all(step <= limits.velocity * (1 / 50) + 1e-9, axis=1))
    assert len(too_fast) <= 2, too_fast
