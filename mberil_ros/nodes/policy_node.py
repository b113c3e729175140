"""policy_node: a trained policy streaming joint commands to ros2_control (lifecycle node).

    ros2 run mberil_ros policy_node --ros-args -p checkpoint:=runs/bc-mlp/checkpoints/best
    ros2 lifecycle set /policy_node configure && ros2 lifecycle set /policy_node activate

configure loads and checks the checkpoint (PolicyRuntime: normalization, the recurrent
step, clamps to the URDF position and velocity limits); activate starts a node-clock timer
at ``control_rate`` that builds the observation from /joint_states (by name), /task/goal and
/task/obstacles and publishes one command per tick; deactivate holds position. A new
episode (a start marker on /task/episode, or ~/reset_episode) restarts the recurrent state.

It holds (repeats its last command) and says why when /joint_states is older than
``stale_periods`` ticks, when an input is NaN, while no goal has arrived, and after a True
on the e-stop topic, which latches until ~/clear_estop (then the policy resumes its
history if the arm is where it was held, else starts afresh). Inference time, loop period,
missed ticks and holds go to /diagnostics and to the log at shutdown.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import MarkerArray

from mberil_ros.errors import UserError
from mberil_ros.nodes import realtime, spinning
from mberil_ros.runtime import ESTOP_RESUME_TOLERANCE
from mberil_ros.settings import setting
from mberil_ros.sim.observation import build_observation
from mberil_ros.sim.obstacle_markers import obstacles_from_markers
from mberil_ros.sim.spaces import (
    LARM_JOINTS,
    MAX_OBSTACLES,
    RARM_JOINTS,
    TOPICS,
    arm_of,
    observation_layout,
)

LATCHED = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
CONTROLLERS = ("forward", "trajectory")


@dataclass
class PolicyNodeParameters:
    checkpoint: str = setting("", "checkpoint folder, or a run folder (its checkpoints/last); "
                              "required")
    autostart: bool = setting(False, "configure and activate at start-up (without a "
                              "lifecycle manager: mberil deploy, tests)")
    control_rate: float = setting(0.0, "Hz of the control timer on the node clock; 0: the "
                                  "rate the policy was trained at")
    controller: str = setting("forward", "forward: Float64MultiArray to the forward position "
                              "controller | trajectory: one-point JointTrajectory")
    command_topic: str = setting(TOPICS["commands"], "Float64MultiArray commands out")
    trajectory_topic: str = setting(TOPICS["trajectory"], "JointTrajectory commands out")
    controller_joints: list[str] = setting(list(RARM_JOINTS + LARM_JOINTS),
                                           "forward_position_controller joint order")
    joint_states_topic: str = setting(TOPICS["joint_states"], "JointState in, by joint name")
    goal_topic: str = setting(TOPICS["goal"], "PoseStamped target of the (first) driven hand")
    goal_left_topic: str = setting(TOPICS["goal_left"], "left-hand target (two-arm policies)")
    obstacles_topic: str = setting(TOPICS["obstacles"], "MarkerArray of CUBE/SPHERE obstacles")
    episode_topic: str = setting(TOPICS["episode"], "JSON episode markers: a start resets the "
                                 "policy's recurrent state")
    estop_topic: str = setting("/policy/estop", "std_msgs/Bool: True holds position until "
                               "~/clear_estop")
    estop_resume_tolerance: float = setting(
        ESTOP_RESUME_TOLERANCE, "rad: at ~/clear_estop the policy's recurrent state is kept "
        "when every joint is within this of the held command (the arm was not moved), else "
        "it starts afresh from where the arm is; 0: always afresh")
    stale_periods: float = setting(3.0, "hold when /joint_states is older than this many "
                                   "control periods")
    deterministic: bool = setting(True, "the policy's mean action (false: sample)")
    urdf: str = setting("", "robot description for the joint limits (empty: the package's)")
    diagnostics_rate: float = setting(1.0, "Hz of /diagnostics")
    thread_priority: int = setting(0, "SCHED_FIFO priority 1-99 of the control thread, set at "
                                   "configure (0: normal scheduling); needs root, "
                                   "CAP_SYS_NICE or an rtprio limit")
    lock_memory: bool = setting(False, "mlockall at configure, so no tick waits for a page "
                                "fault; needs root, CAP_IPC_LOCK or a memlock limit")
    inference_threads: int = setting(1, "torch threads for the per-tick forward pass (0: "
                                     "torch's default, one per core); one recurrent step "
                                     "gains nothing from more, and a second thread waiting "
                                     "for a busy core delays the tick")


class PolicyNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("policy_node")
        self.p = spinning.declare_parameters(self, PolicyNodeParameters)
        self.runtime = None
        self.configure_error: str | None = None
        self._reset_state()
        if self.p["autostart"]:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise UserError(self.configure_error or "configure failed")
            self.trigger_activate()

    def _reset_state(self) -> None:
        self.positions: dict[str, float] = {}
        self.velocities: dict[str, float] = {}
        self.js_time = None  # node-clock time of the last /joint_states
        self.goals: dict[str, list[float]] = {}
        self.obstacles = []
        self.idle: dict[str, float] = {}  # controller joints the policy does not drive
        self.need_reset = True
        self.fresh_state = True  # a /joint_states arrived since the last episode start
        self.estop = False
        self.resume_pending = False  # an e-stop was cleared: resume or restart at the next tick
        self.timer = None
        self.last_tick = None
        self.periods: deque[float] = deque(maxlen=1000)
        self.inference: deque[float] = deque(maxlen=1000)
        self.ticks = self.missed = self.commands_sent = 0
        self.holds: Counter[str] = Counter()
        self.hold_reason: str | None = None

    # ---- lifecycle -----------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        import torch

        from mberil_ros.runtime import PolicyRuntime

        p = self.p
        try:
            if not p["checkpoint"]:
                raise UserError("parameter 'checkpoint' is required")
            if p["controller"] not in CONTROLLERS:
                raise UserError(f"parameter 'controller' must be one of {CONTROLLERS}, "
                                f"got {p['controller']!r}")
            if not 0 <= p["thread_priority"] <= 99:
                raise UserError("parameter 'thread_priority' must be in 0..99 (0: off), got "
                                f"{p['thread_priority']}")
            if p["inference_threads"] < 0:
                raise UserError("parameter 'inference_threads' must be >= 0 (0: torch's "
                                f"default), got {p['inference_threads']}")
            if p["inference_threads"]:
                torch.set_num_threads(p["inference_threads"])
            probe = PolicyRuntime.load(p["checkpoint"], urdf=p["urdf"] or None)
            arm = arm_of(probe.joint_names)
            if arm is None:
                raise UserError(f"policy joints {probe.joint_names} are not the right, left "
                                "or both arms in order")
            self.obs_layout = observation_layout(arm)
            missing = [j for j in self.obs_layout.joints if j not in p["controller_joints"]]
            if missing:
                raise UserError(f"policy joints {missing} are not in controller_joints")
            self.runtime = PolicyRuntime.load(
                p["checkpoint"], joint_names=self.obs_layout.joints,
                state_names=self.obs_layout.state_names, urdf=p["urdf"] or None,
                deterministic=p["deterministic"])
        except UserError as exc:
            self.configure_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.rate = p["control_rate"] or 1.0 / self.runtime.dt
        # the first forward pass allocates (and builds the fused kernel's plan): pay it here,
        # not in the first control tick
        warm = np.zeros(self.obs_layout.obs_dim)
        self.runtime.reset(warm)
        for _ in range(3):
            self.runtime.step(warm)
        self.runtime.stop()
        # everything loaded so far lives for the whole run: keep it out of the cyclic
        # collector's scans, whose full passes over torch's objects delay ticks
        gc.collect()
        gc.freeze()
        self._realtime()
        if p["controller"] == "forward":
            self.pub = self.create_lifecycle_publisher(Float64MultiArray, p["command_topic"], 10)
        else:
            self.pub = self.create_lifecycle_publisher(JointTrajectory, p["trajectory_topic"], 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.my_subscriptions = [
            self.create_subscription(JointState, p["joint_states_topic"], self._on_state, 10),
            self.create_subscription(PoseStamped, p["goal_topic"],
                                     lambda m: self._on_goal(0, m), LATCHED),
            self.create_subscription(PoseStamped, p["goal_left_topic"],
                                     lambda m: self._on_goal(1, m), LATCHED),
            self.create_subscription(MarkerArray, p["obstacles_topic"], self._on_obstacles,
                                     LATCHED),
            self.create_subscription(String, p["episode_topic"], self._on_marker, LATCHED),
            self.create_subscription(Bool, p["estop_topic"], self._on_estop, 10),
        ]
        self.my_services = [
            self.create_service(Trigger, "~/clear_estop", self._clear_estop),
            self.create_service(Trigger, "~/reset_episode", self._reset_episode),
        ]
        self.diag_timer = self.create_timer(1.0 / p["diagnostics_rate"], self.publish_diagnostics)
        self.get_logger().info(f"loaded {p['checkpoint']}: {self.runtime.summary}; "
                               f"{self.rate:g} Hz to the {p['controller']} controller, "
                               f"{torch.get_num_threads()} inference thread(s)")
        return TransitionCallbackReturn.SUCCESS

    def _realtime(self) -> None:
        """Scheduling and memory locking for the thread that spins this node (the caller of
        configure); a refusal is a warning, not a failure, as in controller_manager."""
        for wanted, apply in ((self.p["lock_memory"], realtime.lock_memory),
                              (self.p["thread_priority"] > 0,
                               lambda: realtime.set_thread_priority(self.p["thread_priority"]))):
            if wanted:
                applied, msg = apply()
                log = self.get_logger()
                (log.info if applied else log.warning)(msg)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self.need_reset = True
        self.last_tick = None
        self.timer = self.create_timer(1.0 / self.rate, self.tick)
        result = super().on_activate(state)
        print(f"policy_node: active, {self.rate:g} Hz", flush=True)  # `mberil deploy` waits
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        if self.timer is not None:
            self.destroy_timer(self.timer)
            self.timer = None
        self._publish_hold("deactivated")  # the last command before the publisher goes quiet
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        for sub in self.my_subscriptions:
            self.destroy_subscription(sub)
        for srv in self.my_services:
            self.destroy_service(srv)
        self.destroy_timer(self.diag_timer)
        self.destroy_publisher(self.diag_pub)
        self.destroy_lifecycle_publisher(self.pub)
        self.runtime = None
        self._reset_state()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS

    # ---- inputs ----------------------------------------------------------------------------
    def _on_state(self, msg: JointState) -> None:
        self.positions = dict(zip(msg.name, msg.position, strict=False))
        self.velocities = dict(zip(msg.name, msg.velocity, strict=False))
        self.js_time = self.get_clock().now()
        self.fresh_state = True

    def _on_goal(self, index: int, msg: PoseStamped) -> None:
        hands = self.obs_layout.hands if self.runtime is not None else ("right", "left")
        if index < len(hands):
            p = msg.pose.position
            self.goals[hands[index]] = [p.x, p.y, p.z]

    def _on_obstacles(self, msg: MarkerArray) -> None:
        try:
            self.obstacles = obstacles_from_markers(msg.markers, MAX_OBSTACLES)
        except ValueError as exc:
            self.obstacles = None  # unusable: hold until a valid set arrives
            self.get_logger().error(f"{self.p['obstacles_topic']}: {exc}: holding")

    def _on_marker(self, msg: String) -> None:
        try:
            event = json.loads(msg.data).get("event")
        except (ValueError, AttributeError):
            self.get_logger().error(f"{self.p['episode_topic']}: not a JSON episode marker: "
                                    f"{msg.data[:80]!r}")
            return
        if event == "start":
            self._new_episode()

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self.estop:
            self.get_logger().error(f"e-stop on {self.p['estop_topic']}: holding until "
                                    "~/clear_estop")
        self.estop = self.estop or bool(msg.data)

    def _clear_estop(self, request: Trigger.Request, response: Trigger.Response
                     ) -> Trigger.Response:
        self.estop = False
        # decided on the first /joint_states after the clear: a history whose arm was moved
        # meanwhile is not the arm's, but a fresh one in mid-reach makes a Mamba policy creep
        self.resume_pending = not self.need_reset
        self.fresh_state = False
        response.success, response.message = True, "e-stop cleared"
        return response

    def _reset_episode(self, request: Trigger.Request, response: Trigger.Response
                       ) -> Trigger.Response:
        self._new_episode()
        response.success, response.message = True, "recurrent state reset at the next tick"
        return response

    def _new_episode(self) -> None:
        self.need_reset = True
        self.resume_pending = False
        self.fresh_state = False  # the reset needs a state of the new episode
        self.idle = {}
        if self.runtime is not None:
            self.runtime.stop()  # never hold (send) the previous episode's last command

    # ---- control ---------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.get_clock().now()
        if self.last_tick is not None:
            period = (now - self.last_tick).nanoseconds * 1e-9
            self.periods.append(period)
            self.missed += max(0, round(period * self.rate) - 1)
        self.last_tick = now
        self.ticks += 1
        if self.js_time is None or not self.fresh_state:
            return  # nothing measured yet (or not since the reset): send nothing
        age = (now - self.js_time).nanoseconds * 1e-9
        if self.estop:
            return self._publish_hold("e-stop")
        if age > self.p["stale_periods"] / self.rate:
            return self._publish_hold(f"{self.p['joint_states_topic']} stale ({age:.3f} s)")
        missing = [h for h in self.obs_layout.hands if h not in self.goals]
        if missing or self.obstacles is None:
            what = f"no goal for the {missing[0]} hand" if missing else "invalid obstacles"
            return self._publish_hold(what)
        try:
            obs = build_observation(self.obs_layout, self.positions, self.velocities,
                                    self.goals, self.obstacles)
        except KeyError as exc:
            return self._publish_hold(f"joint {exc} missing from /joint_states")
        if self.resume_pending:
            if not np.all(np.isfinite(obs)):
                return self._publish_hold("non-finite observation at the e-stop clear")
            self.resume_pending = False
            moved = self.runtime.resume(obs, self.p["estop_resume_tolerance"])
            if moved is None:
                self.get_logger().warn("e-stop cleared: the arm is not where it was held, so "
                                       "the policy starts a fresh history from here")
                self.idle = self._idle_positions()
            else:
                self.get_logger().info(f"e-stop cleared: the arm is within {moved:.4f} rad of "
                                       "the held command, the policy resumes its history")
        if self.need_reset:
            if not np.all(np.isfinite(obs)):
                return self._publish_hold("non-finite observation at the episode start")
            self.runtime.reset(obs)
            self.idle = self._idle_positions()
            self.need_reset = False
        t0 = time.perf_counter()
        command = self.runtime.step(obs)
        self.inference.append(time.perf_counter() - t0)
        self._note_hold(self.runtime.hold_reason)
        self._publish(command)

    def _idle_positions(self) -> dict[str, float]:
        """The controller joints the policy does not drive, held where they are now."""
        return {j: self.positions[j] for j in self.p["controller_joints"]
                if j not in self.obs_layout.joints and j in self.positions}

    def _publish_hold(self, reason: str) -> None:
        """Repeat the last command; before the episode's first one, send nothing (the
        controller keeps holding what it holds)."""
        self._note_hold(reason)
        if self.runtime is not None and self.runtime.prev_command is not None:
            self._publish(self.runtime.hold(reason))

    def _note_hold(self, reason: str | None) -> None:
        if reason is not None:
            self.holds[reason.split(" (")[0]] += 1
            if reason != self.hold_reason:
                self.get_logger().warn(f"holding position: {reason}")
        self.hold_reason = reason

    def _publish(self, command: np.ndarray) -> None:
        values = dict(zip(self.obs_layout.joints, (float(v) for v in command), strict=True))
        if self.p["controller"] == "forward":
            joints = self.p["controller_joints"]
            missing = [j for j in joints if j not in values and j not in self.idle]
            if missing:  # never guess a joint's target: wait for its measured position
                return self._note_hold(f"no measured position for {missing[0]}")
            self.pub.publish(Float64MultiArray(
                data=[values.get(j, self.idle.get(j)) for j in joints]))
        else:
            period = 1.0 / self.rate
            point = JointTrajectoryPoint(positions=list(values.values()),
                                         time_from_start=Duration(sec=int(period),
                                                                  nanosec=int(period % 1 * 1e9)))
            self.pub.publish(JointTrajectory(joint_names=list(values), points=[point]))
        self.commands_sent += 1

    # ---- reporting ---------------------------------------------------------------------------
    def stats(self) -> dict[str, str]:
        def pct(values: deque[float], q: float) -> str:
            return f"{1e3 * float(np.percentile(values, q)):.3f}" if values else "nan"

        return {"ticks": str(self.ticks), "commands": str(self.commands_sent),
                "missed_ticks": str(self.missed),
                "inference_ms_p50": pct(self.inference, 50),
                "inference_ms_p99": pct(self.inference, 99),
                "period_ms_p50": pct(self.periods, 50), "period_ms_p99": pct(self.periods, 99),
                "holding": self.hold_reason or "",
                **{f"holds/{k}": str(v) for k, v in sorted(self.holds.items())}}

    def publish_diagnostics(self) -> None:
        status = DiagnosticStatus(name="mberil_ros/policy_node", hardware_id=self.get_name())
        status.level = DiagnosticStatus.WARN if self.hold_reason else DiagnosticStatus.OK
        status.message = f"holding: {self.hold_reason}" if self.hold_reason else "streaming"
        status.values = [KeyValue(key=k, value=v) for k, v in self.stats().items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)

    def report(self) -> None:
        s = self.stats()
        print(f"policy_node: {s['ticks']} ticks, {s['commands']} commands, "
              f"{s['missed_ticks']} missed; inference p50/p99 {s['inference_ms_p50']}/"
              f"{s['inference_ms_p99']} ms, period p50/p99 {s['period_ms_p50']}/"
              f"{s['period_ms_p99']} ms; holds {dict(self.holds) or 'none'}", flush=True)


def _report(node: PolicyNode) -> None:
    if node.runtime is not None:
        node.report()


def main(args: list[str] | None = None) -> int:
    return spinning.run(PolicyNode, "policy_node", args, cleanup=_report)


if __name__ == "__main__":
    sys.exit(main())
