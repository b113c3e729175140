"""demonstrator_node: drive the sim with a scripted demonstrator, only through ROS topics.

For each scheduled episode it sets the sim's `suite`, `seed` and episode label parameters,
calls the sim's ~/reset, then answers every /joint_states message with a command on
/forward_position_controller/commands until the sim's /task/episode "end" marker arrives.
The demonstrator sees the episode geometry from the reset response (the same JSON the sim
publishes on /task/layout). Exits when all episodes are done.

    ros2 run mberil_ros demonstrator_node --ros-args -p expert_episodes:=10 \
        -p suboptimal_episodes:=5
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import numpy as np
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from mberil_ros.errors import UserError
from mberil_ros.nodes import spinning
from mberil_ros.record import PROGRESS_PREFIX
from mberil_ros.settings import setting
from mberil_ros.sim.demonstrators import DEMONSTRATORS, make_demonstrator
from mberil_ros.sim.layouts import episode_from_dict
from mberil_ros.sim.observation import build_observation
from mberil_ros.sim.scene import Obstacle
from mberil_ros.sim.spaces import LARM_JOINTS, RARM_JOINTS, TOPICS, observation_layout
from mberil_ros.sim.suites import SUITE_CHOICES


@dataclass
class DemonstratorNodeParameters:
    suite: str = setting("train", "task suite: " + SUITE_CHOICES)
    seed: int = setting(0, "seed of the first episode; episode k uses seed + k")
    arm: str = setting("right", "driven arm: right | left | both")
    expert_episodes: int = setting(10, "episodes run by the scripted expert (label expert)")
    suboptimal_episodes: int = setting(5, "episodes run by the sub-optimal demonstrators")
    suboptimal_demonstrators: list[str] = setting(["noisy", "detour", "greedy"],
                                                  "sub-optimal demonstrators, cycled through")
    sim_node: str = setting("sim_node", "name of the sim node (its ~/reset service)")
    controller_joints: list[str] = setting(list(RARM_JOINTS + LARM_JOINTS),
                                           "forward_position_controller joint order")
    command_topic: str = setting(TOPICS["commands"],
                                 "Float64MultiArray commands out")
    joint_states_topic: str = setting(TOPICS["joint_states"], "JointState in")
    service_timeout: float = setting(30.0, "s (wall) to wait for the sim's services and "
                                     "subscribers")
    # commands sent before DDS has matched a subscriber are lost to it
    min_command_subscribers: int = setting(1, "wait until this many subscribers (the sim, plus "
                                           "the recorder when recording) see the command topic")
    # states the sim publishes before the recorder reads them are lost to the recording (the
    # recorder subscribes to each topic only once it has seen its publisher)
    min_state_subscribers: int = setting(1, "wait until this many nodes (this one, plus the "
                                         "recorder when recording) read the joint states topic")


class DemonstratorNode(Node):
    def __init__(self) -> None:
        super().__init__("demonstrator_node")
        p = spinning.declare_parameters(self, DemonstratorNodeParameters)
        self.params = p
        for name in p["suboptimal_demonstrators"]:
            if name not in DEMONSTRATORS or name == "expert":
                raise UserError(f"suboptimal_demonstrators: unknown {name!r}; "
                                f"known: {[d for d in DEMONSTRATORS if d != 'expert']}")
        subopt = list(p["suboptimal_demonstrators"])
        self.schedule = ["expert"] * int(p["expert_episodes"]) + [
            subopt[k % len(subopt)] for k in range(int(p["suboptimal_episodes"]))
        ]
        self.obs_layout = observation_layout(p["arm"])
        self.controller_joints = list(p["controller_joints"])
        self.command_pub = self.create_publisher(Float64MultiArray, p["command_topic"], 10)
        self.create_subscription(JointState, p["joint_states_topic"], self._on_joint_states, 10)
        self.create_subscription(String, TOPICS["episode"], self._on_marker,
                                 QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        sim = p["sim_node"]
        self.param_client = self.create_client(SetParameters, f"/{sim}/set_parameters")
        self.reset_client = self.create_client(Trigger, f"/{sim}/reset")
        self.index = -1  # position in the schedule
        self.episode_id: int | None = None  # the sim's episode counter for the running one
        self.demonstrator = None
        self.hold: dict[str, float] = {}
        self.goals: dict[str, list[float]] = {}
        self.episode_start = 0.0
        self.last_state: JointState | None = None
        self.obstacles: list[Obstacle] = []
        self.finished = False
        self.results: list[dict] = []

    # ----- episode schedule -----
    def start(self) -> None:
        timeout = float(self.params["service_timeout"])
        for client in (self.param_client, self.reset_client):
            if not spinning.wait_until(client.service_is_ready, timeout):
                raise UserError(f"service {client.srv_name} not available after {timeout:.0f} s "
                                "(is sim_node running?)")
        self._wait_for_subscribers(timeout)
        self._wait_for_state_readers(timeout)
        self._next_episode()

    def _wait_for_subscribers(self, timeout: float) -> None:
        """Until DDS has matched at least `min_command_subscribers` readers of the command
        topic, and every reader the graph knows of (a matched count alone can include the
        stale reader of a process that just exited, while the recorder is not matched yet)."""
        topic = self.params["command_topic"]

        def matched() -> bool:
            known = len(self.get_subscriptions_info_by_topic(topic))
            wanted = max(int(self.params["min_command_subscribers"]), known)
            return self.command_pub.get_subscription_count() >= wanted

        if not spinning.wait_until(matched, timeout):
            wanted = max(int(self.params["min_command_subscribers"]),
                         len(self.get_subscriptions_info_by_topic(topic)))
            raise UserError(f"{topic}: {self.command_pub.get_subscription_count()} "
                            f"subscriber(s) matched after {timeout:.0f} s, {wanted} expected")

    def _wait_for_state_readers(self, timeout: float) -> None:
        """Until the graph shows `min_state_subscribers` readers of the joint states topic
        (the sim's publisher matches them while the first episode's reset is requested)."""
        topic, wanted = self.params["joint_states_topic"], int(self.params["min_state_subscribers"])
        if not spinning.wait_until(lambda: self.count_subscribers(topic) >= wanted, timeout):
            raise UserError(f"{topic}: {self.count_subscribers(topic)} reader(s) after "
                            f"{timeout:.0f} s, {wanted} expected")

    def _next_episode(self) -> None:
        self.index += 1
        self.episode_id = None
        self.demonstrator = None
        if self.index >= len(self.schedule):
            self.finished = True
            return
        name = self.schedule[self.index]
        self.demonstrator = make_demonstrator(name, seed=int(self.params["seed"]) + self.index)
        request = SetParameters.Request()
        request.parameters = [
            Parameter("suite", value=self.params["suite"]).to_parameter_msg(),
            Parameter("seed", value=int(self.params["seed"]) + self.index).to_parameter_msg(),
            Parameter("episode_label", value=self.demonstrator.label).to_parameter_msg(),
            Parameter("episode_demonstrator", value=name).to_parameter_msg(),
        ]
        self.param_client.call_async(request).add_done_callback(self._on_parameters_set)

    def _on_parameters_set(self, future) -> None:
        failures = [r.reason for r in future.result().results if not r.successful]
        if failures:
            self.get_logger().error(f"sim rejected parameters: {failures}")
            self.finished = True
            return
        self.reset_client.call_async(Trigger.Request()).add_done_callback(self._on_reset)

    def _on_reset(self, future) -> None:
        info = json.loads(future.result().message)
        episode = episode_from_dict(info["layout"], source="sim reset response",
                                    suite=info["suite"])
        self.demonstrator.reset(episode, seed=int(self.params["seed"]) + self.index)
        self.goals = {side: list(xyz) for side, xyz in episode.targets.items()}
        self.obstacles = list(episode.obstacles)
        self.hold = {}
        self.episode_start = float(info["time"])
        self.episode_id = int(info["episode"])
        # The sim published the episode's first state before answering; it may already be
        # here. Answer it now (in lockstep the sim waits for this command).
        if self.last_state is not None:
            self._on_joint_states(self.last_state)

    def _on_marker(self, msg: String) -> None:
        marker = json.loads(msg.data)
        if marker.get("event") != "end" or marker.get("episode") != self.episode_id:
            return
        self.results.append(marker)
        done = len(self.results)
        successes = sum(bool(m.get("success")) for m in self.results)
        print(f"{PROGRESS_PREFIX} {done}/{len(self.schedule)} {marker['demonstrator']} "
              f"success={bool(marker.get('success'))} total_success={successes}/{done}",
              flush=True)
        self._next_episode()

    # ----- control -----
    def _on_joint_states(self, msg: JointState) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if self.episode_id is None or self.demonstrator is None:
            self.last_state = msg
            return
        if stamp < self.episode_start - 1e-6:  # a state from before the reset, still in flight
            return
        self.last_state = None
        positions = dict(zip(msg.name, msg.position, strict=True))
        velocities = dict(zip(msg.name, msg.velocity, strict=True))
        if not self.hold:  # joints the demonstrator does not move keep their episode start
            self.hold = {n: positions[n] for n in self.controller_joints}
        obs = build_observation(self.obs_layout, positions, velocities, self.goals, self.obstacles)
        action = self.demonstrator.act(obs)
        command = dict(self.hold)
        command.update(zip(self.obs_layout.joints, (float(v) for v in action), strict=True))
        if not np.all(np.isfinite(action)):
            self.get_logger().error("demonstrator produced NaN: not sending")
            return
        self.command_pub.publish(Float64MultiArray(data=[command[n]
                                                         for n in self.controller_joints]))


def _started() -> DemonstratorNode:
    node = DemonstratorNode()
    node.start()
    return node


def _exit_code(node: DemonstratorNode, stopped: bool) -> int:
    if stopped:
        return 130
    return 1 if len(node.results) < len(node.schedule) else 0


def main(args: list[str] | None = None) -> int:
    return spinning.run(_started, "demonstrator_node", args, done=lambda n: n.finished,
                        finish=_exit_code)


if __name__ == "__main__":
    sys.exit(main())
