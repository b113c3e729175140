"""sim_node: the embedded MuJoCo NEXTAGE behind the topics ros2_control would offer.

Publishes /joint_states (names always set), /clock (sim time), /task/goal (the driven arm's
goal; the right one with both arms, the left one then on /task/goal_left), /task/obstacles
(visualization_msgs/MarkerArray, the contract in sim/obstacle_markers.py: RViz shows it and
the converter reads it), /task/layout (JSON: the full episode) and /task/episode (JSON
start/end markers, so recordings can be split). Accepts Float64MultiArray on
/forward_position_controller/commands (one value per controller joint, applied at the next
tick) and JointTrajectory on /joint_trajectory_controller/joint_trajectory (linear
interpolation between points; stamp 0 = now; a new message replaces the running trajectory,
as the controller does).

~/reset (std_srvs/Trigger) starts a new episode of the current `suite` at the current `seed`
(then advances `seed` by one); the response message is the episode as JSON.

    ros2 run mberil_ros sim_node --ros-args -p suite:=heldout_obstacles -p seed:=3
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import rclpy
from geometry_msgs.msg import Pose, PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from mberil_ros.errors import UserError
from mberil_ros.nodes import spinning
from mberil_ros.record import PROGRESS_PREFIX
from mberil_ros.settings import setting
from mberil_ros.sim import obstacle_markers as om
from mberil_ros.sim.layouts import episode_to_dict, load_layouts
from mberil_ros.sim.scene import Obstacle
from mberil_ros.sim.spaces import (
    ALL_JOINTS,
    LARM_JOINTS,
    PHYSICS_DT,
    RARM_JOINTS,
    SETTLE_TICKS,
    TOPICS,
)
from mberil_ros.sim.suites import SUITE_CHOICES
from mberil_ros.sim.task import ReachingTask
from mberil_ros.sim.trajectory import TrajectoryInterpolator

LATCHED = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)

@dataclass
class SimNodeParameters:
    suite: str = setting("train", "task suite of the next episode: " + SUITE_CHOICES)
    seed: int = setting(0, "layout seed of the next episode; incremented after each reset")
    arm: str = setting("right", "driven arm: right | left | both")
    layouts_file: str = setting("", "YAML of user layouts (docs/task.md); episodes cycle "
                                "through them")
    auto_start: bool = setting(True, "start an episode at launch (false: hold the init pose "
                               "until ~/reset)")
    control_rate: float = setting(50.0, "Hz: command application and /joint_states rate")
    physics_dt: float = setting(PHYSICS_DT, "s: MuJoCo step")
    real_time_factor: float = setting(1.0, "1.0 for deployment; > 1 for data generation")
    # lockstep: every recorded state is paired with the command computed from it, whatever
    # the machine's load
    lockstep: bool = setting(False, "during an episode, advance only once a command answered "
                             "the last published state (data generation)")
    lockstep_timeout: float = setting(1.0, "s (wall) to wait for that command before stepping "
                                      "with the last one")
    controller_joints: list[str] = setting(list(RARM_JOINTS + LARM_JOINTS),
                                           "forward_position_controller joint order")
    command_topic: str = setting(TOPICS["commands"],
                                 "Float64MultiArray commands in controller_joints order")
    trajectory_topic: str = setting(TOPICS["trajectory"],
                                    "JointTrajectory commands")
    joint_states_topic: str = setting(TOPICS["joint_states"], "JointState output")
    episode_label: str = setting("", "copied into episode markers (expert | suboptimal)")
    episode_demonstrator: str = setting("", "copied into episode markers")
    episodes: int = setting(0, "run this many episodes back to back (each ends, the next "
                            "starts at the next seed), then exit; 0: episodes start only at "
                            "launch (auto_start) and on ~/reset")
    # a recording shows the hand held on the target, as generated datasets do (both
    # default to spaces.SETTLE_TICKS)
    settle_ticks: int = setting(SETTLE_TICKS, "ticks an episode goes on after a success "
                                "before its end marker, the hand held on the target (a "
                                "collision while settling ends it at once)")


def pose_at(position) -> Pose:
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
    pose.orientation.w = 1.0
    return pose


def obstacle_marker_array(obstacles: Sequence[Obstacle], stamp) -> MarkerArray:
    """DELETEALL (drops the previous episode's obstacles in RViz), then one marker per
    obstacle with id = slot index."""
    clear = Marker(action=Marker.DELETEALL, ns=om.NAMESPACE)
    clear.header.stamp, clear.header.frame_id = stamp, om.FRAME_ID
    markers = [clear]
    for slot, ob in enumerate(obstacles):
        m = Marker(ns=om.NAMESPACE, id=slot, type=om.MARKER_TYPES[ob.type], action=Marker.ADD)
        m.header.stamp, m.header.frame_id = stamp, om.FRAME_ID
        m.pose = pose_at(ob.position)
        m.scale.x, m.scale.y, m.scale.z = om.marker_scale(ob)
        m.color.r, m.color.g, m.color.b, m.color.a = 0.9, 0.4, 0.1, 0.8  # a = 0 is invisible
        markers.append(m)
    return MarkerArray(markers=markers)


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("sim_node")
        p = spinning.declare_parameters(self, SimNodeParameters)
        self.task = ReachingTask(suite=p["suite"], arm=p["arm"], seed=p["seed"])
        self.task.model.opt.timestep = float(p["physics_dt"])
        control_dt = 1.0 / float(p["control_rate"])
        self.physics_steps = max(1, round(control_dt / float(p["physics_dt"])))
        self.control_dt = self.physics_steps * float(p["physics_dt"])
        if float(p["real_time_factor"]) <= 0:
            raise UserError(f"real_time_factor must be > 0, got {p['real_time_factor']}")
        self.controller_joints = list(p["controller_joints"])
        unknown = [j for j in self.controller_joints if j not in ALL_JOINTS]
        if unknown:
            raise UserError(f"controller_joints: unknown joints {unknown}")
        self.layouts = load_layouts(p["layouts_file"]) if p["layouts_file"] else []

        self.joint_pub = self.create_publisher(JointState, p["joint_states_topic"], 10)
        self.clock_pub = self.create_publisher(ClockMsg, TOPICS["clock"], 10)
        self.goal_pub = self.create_publisher(PoseStamped, TOPICS["goal"], LATCHED)
        self.goal_left_pub = self.create_publisher(PoseStamped, TOPICS["goal_left"], LATCHED)
        self.obstacles_pub = self.create_publisher(MarkerArray, TOPICS["obstacles"], LATCHED)
        self.layout_pub = self.create_publisher(String, TOPICS["layout"], LATCHED)
        self.episode_pub = self.create_publisher(String, TOPICS["episode"], LATCHED)
        self.create_subscription(Float64MultiArray, p["command_topic"], self._on_command, 10)
        self.create_subscription(JointTrajectory, p["trajectory_topic"], self._on_trajectory, 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.add_on_set_parameters_callback(self._check_parameters)

        self.episode_index = -1
        self._unmatched_readers: dict[str, int] = {}  # topic -> readers waited for in vain
        # MuJoCo's clock restarts at every reset; ROS time must never go backwards.
        self.time_offset = 0.0
        self.episode_running = False
        self.pending_command: dict[str, float] | None = None
        self.trajectory: TrajectoryInterpolator | None = None
        self.lockstep = bool(p["lockstep"])
        self.lockstep_timeout = float(p["lockstep_timeout"])
        self.commands_received = 0
        self.end_info: dict | None = None  # lockstep: episode over, end not yet announced
        self.success_info: dict | None = None  # reached: settling for settle_ticks more ticks
        self.episodes_done = 0
        self.finished = False  # `episodes` > 0 and all of them done
        self.settle_left = 0
        self.commands_at_last_state = 0
        self.last_state_wall = time.monotonic()
        self.task.reset(seed=p["seed"], layout=self.layouts[0] if self.layouts else None)
        if p["auto_start"]:
            self.start_episode()
        # The sim owns time: its loop runs on the wall clock, scaled by real_time_factor.
        self.timer = self.create_timer(
            self.control_dt / float(p["real_time_factor"]), self.tick,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self.get_logger().info(
            f"MuJoCo NEXTAGE: arm {p['arm']}, suite {p['suite']}, {1 / self.control_dt:.0f} Hz "
            f"control, {p['real_time_factor']}x real time"
        )

    # ----- parameters -----
    def _check_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name == "suite" and p.value not in self.task_suites():
                return SetParametersResult(successful=False,
                                           reason=f"unknown suite {p.value!r}")
            if p.name == "seed" and (not isinstance(p.value, int) or p.value < 0):
                return SetParametersResult(successful=False, reason="seed must be an int >= 0")
        return SetParametersResult(successful=True)

    @staticmethod
    def task_suites() -> tuple[str, ...]:
        from mberil_ros.sim.suites import ALL_SUITES

        return tuple(ALL_SUITES)

    # ----- episodes -----
    def start_episode(self) -> dict:
        if self.episode_running:
            self._publish_marker("end", success=False, aborted=True)
        suite = self.get_parameter("suite").value
        seed = int(self.get_parameter("seed").value)
        self.episode_index += 1
        self.time_offset += self.task.time + self.control_dt
        if self.layouts:
            layout = self.layouts[self.episode_index % len(self.layouts)]
            self.task.reset(layout=layout)
        else:
            if suite != self.task.suite.name:
                self.task = self._task_for(suite)
            self.task.reset(seed=seed)
        self.set_parameters([Parameter("seed", value=seed + 1)])
        self.pending_command = None
        self.trajectory = None
        self.episode_running = True
        self.end_info = None
        self.success_info, self.settle_left = None, 0
        self.episode_info = {"episode": self.episode_index, "suite": self.task.episode.suite,
                             "seed": seed, "time": self.sim_time(),
                             "layout": episode_to_dict(self.task.episode)}
        self._publish_task()
        self._wait_for_state_readers()
        # The first state (and its /clock) before the start marker: a recorder stamping with
        # the sim time messages were sent at (data/sim_time_stamps.py) then files the marker
        # at the episode's first tick, not at the idle tick before the reset, whose state
        # (and the previous episode's last command, if still fresh) would otherwise become
        # a frame of this episode in some recordings and not in others.
        self._publish_state()
        self._publish_marker("start")
        return self.episode_info

    def _wait_for_state_readers(self, timeout: float = 2.0) -> None:
        """Until this node's state and clock publishers have matched every reader the graph
        knows of. The graph shows a reader (what the demonstrator waits for) before DDS has
        matched it with this publisher; a first state published in between is lost to it,
        and a recorder that subscribed a moment ago then misses the episode's first frame
        on a loaded machine. DDS matches on its own threads, so polling needs no spin. A
        reader that never matches (incompatible QoS) costs ``timeout`` once: the same
        readers are not waited for again."""
        for pub in (self.joint_pub, self.clock_pub):
            if self._unmatched_readers.get(pub.topic_name) == self._readers(pub):
                continue
            if not spinning.wait_until(lambda p=pub: p.get_subscription_count() >= self._readers(p),
                                       timeout, period=0.002):
                self._unmatched_readers[pub.topic_name] = self._readers(pub)
                self.get_logger().warning(
                    f"{pub.topic_name}: {pub.get_subscription_count()} of {self._readers(pub)} "
                    f"readers matched after {timeout:.0f} s; publishing the episode's first "
                    "state anyway")

    def _readers(self, pub) -> int:  # noqa: ANN001 - an rclpy Publisher
        return len(self.get_subscriptions_info_by_topic(pub.topic_name))

    def _task_for(self, suite: str) -> ReachingTask:
        task = ReachingTask(suite=suite, arm=self.task.arm)
        task.model.opt.timestep = self.task.model.opt.timestep
        return task

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        info = self.start_episode()
        response.success = True
        response.message = json.dumps(info)
        return response

    def _publish_marker(self, event: str, **extra: object) -> dict:
        marker = {
            "event": event,
            "episode": self.episode_index,
            "label": self.get_parameter("episode_label").value,
            "demonstrator": self.get_parameter("episode_demonstrator").value,
            "suite": self.episode_info["suite"],
            "seed": self.episode_info["seed"],
            "arm": self.task.arm,
            "time": self.sim_time(),
            **extra,
        }
        self.episode_pub.publish(String(data=json.dumps(marker)))
        return marker

    def _publish_task(self) -> None:
        stamp = self._stamp()
        # /task/goal carries the driven arm's goal (the converter's "goal" role), so a
        # left-arm recording converts like a right-arm one.
        for hand, pub in zip(self.task.obs_layout.hands, (self.goal_pub, self.goal_left_pub),
                             strict=False):
            msg = PoseStamped()
            msg.header.stamp, msg.header.frame_id = stamp, "WAIST"
            msg.pose = pose_at(self.task.goals[hand])
            pub.publish(msg)
        self.obstacles_pub.publish(obstacle_marker_array(self.task.obstacles, stamp))
        self.layout_pub.publish(String(data=json.dumps(self.episode_info)))

    # ----- commands -----
    def _on_command(self, msg: Float64MultiArray) -> None:
        values = list(msg.data)
        if len(values) != len(self.controller_joints):
            self.get_logger().error(
                f"{self.get_parameter('command_topic').value}: {len(values)} values, expected "
                f"{len(self.controller_joints)} ({', '.join(self.controller_joints)}); ignored",
                throttle_duration_sec=1.0)
            return
        if not all(math.isfinite(v) for v in values):
            self.get_logger().error("command contains NaN/inf: holding position",
                                    throttle_duration_sec=1.0)
            return
        self.trajectory = None  # like switching to the forward controller
        self.pending_command = dict(zip(self.controller_joints, values, strict=True))
        self.commands_received += 1

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            self.trajectory = TrajectoryInterpolator.from_message(
                msg, now=self.sim_time(), current=self.task.joint_targets())
        except ValueError as exc:
            self.get_logger().error(f"trajectory rejected: {exc}")
            return
        self.pending_command = None
        self.commands_received += 1

    # ----- loop -----
    def tick(self) -> None:
        if self.lockstep and self.episode_running and not self._answered():
            return
        if self.end_info is not None:
            # Lockstep: the demonstrator has answered the final state; that answer is not
            # applied, and only now the end is announced, so no command of this episode is
            # still in flight when the next one starts.
            self.pending_command = None
            self._end_episode(self.end_info)
            return
        if self.trajectory is not None:
            target = self.trajectory.sample(self.sim_time() + self.control_dt)
            self.task.set_joint_targets(target, dt=self.control_dt)
        elif self.pending_command is not None:
            self.task.set_joint_targets(self.pending_command, dt=self.control_dt)
        self.task.advance(self.physics_steps)
        self._publish_state()
        if self.episode_running:
            done = self._episode_outcome(self.task.status())
            if done is not None:
                if self.lockstep:
                    self.end_info = done
                else:
                    self._end_episode(done)

    def _episode_outcome(self, info: dict) -> dict | None:
        """The info to end the episode with, or None while it goes on (settling included)."""
        if self.success_info is not None:  # settling on the target after a success
            self.settle_left -= 1
            return self.success_info if info["collision"] or self.settle_left <= 0 else None
        if not self.task.is_done(info):
            return None
        settle = int(self.get_parameter("settle_ticks").value)
        if info["success"] and settle > 0:
            self.success_info, self.settle_left = info, settle
            return None
        return info

    def _end_episode(self, info: dict) -> None:
        self.episode_running = False
        self.end_info = None
        marker = self._publish_marker("end", success=bool(info["success"]),
                                      collision=bool(info["collision"]),
                                      distance=float(info["distance"]))
        # one line per episode on stdout: `mberil deploy` reads them (no rclpy in the CLI)
        print(f"{PROGRESS_PREFIX} {json.dumps(marker)}", flush=True)
        self.episodes_done += 1
        wanted = int(self.get_parameter("episodes").value)
        if wanted and self.episodes_done < wanted:
            self.start_episode()
        elif wanted:
            self.finished = True


    def _answered(self) -> bool:
        """Lockstep: has a command arrived since the last state, or has the wait timed out?"""
        if self.commands_received > self.commands_at_last_state:
            return True
        if time.monotonic() - self.last_state_wall < self.lockstep_timeout:
            return False
        self.get_logger().warn(f"lockstep: no command for {self.lockstep_timeout} s, "
                               "stepping with the last one", throttle_duration_sec=5.0)
        return True

    def sim_time(self) -> float:
        """Seconds since the node started, in simulated time (monotonic across episodes)."""
        return self.time_offset + self.task.time

    def _stamp(self):
        return rclpy.time.Time(nanoseconds=round(self.sim_time() * 1e9)).to_msg()

    def _publish_state(self) -> None:
        stamp = self._stamp()
        self.clock_pub.publish(ClockMsg(clock=stamp))
        positions, velocities = self.task.joint_positions(), self.task.joint_velocities()
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = list(ALL_JOINTS)
        msg.position = [float(positions[n]) for n in ALL_JOINTS]
        msg.velocity = [float(velocities[n]) for n in ALL_JOINTS]
        self.joint_pub.publish(msg)
        self.commands_at_last_state = self.commands_received
        self.last_state_wall = time.monotonic()


def main(args: list[str] | None = None) -> int:
    return spinning.run(SimNode, "sim_node", args, done=lambda node: node.finished)


if __name__ == "__main__":
    sys.exit(main())
