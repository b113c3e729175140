"""End to end over DDS on loopback: sim_node + demonstrator_node + recorder_node, each in its
own process, then `mberil convert`; the dataset must hold exactly what was commanded and
what the sim published (seen independently by a listener in this test process)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ros_helpers import require_rclpy, spin_until, start_node, stop_node

require_rclpy()

import rclpy  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from mberil_ros.cli import main as cli_main  # noqa: E402
from mberil_ros.data.dataset import Dataset  # noqa: E402
from mberil_ros.sim.observation import obstacle_features  # noqa: E402
from mberil_ros.sim.obstacle_markers import obstacles_from_markers  # noqa: E402
from mberil_ros.sim.spaces import MAX_OBSTACLES, RARM_JOINTS, RIGHT  # noqa: E402

COMMANDS = "/forward_position_controller/commands"


def _subscribers(node, topic: str) -> set[str]:
    return {info.node_name for info in node.get_subscriptions_info_by_topic(topic)}


def test_recorded_episodes_convert_to_what_was_commanded_and_published(tmp_path):
    bag, dataset = tmp_path / "bag", tmp_path / "dataset"
    sim = start_node("mberil_ros.nodes.sim_node",
                     # The idle pose before the first reset comes from another seed than
                     # the episodes, so idle states cannot be mistaken for episode states.
                     {"auto_start": False, "real_time_factor": 10.0, "seed": 1000,
                      "lockstep": True},
                     tmp_path / "sim.log")
    recorder = start_node("mberil_ros.nodes.recorder_node",
                          {"output": str(bag), "use_sim_time": True}, tmp_path / "recorder.log")
    rclpy.init()
    node = rclpy.create_node("e2e_listener")
    commands: list[np.ndarray] = []
    states: list[np.ndarray] = []
    markers: list[dict] = []
    node.create_subscription(
        Float64MultiArray, COMMANDS, lambda m: commands.append(np.array(m.data)), 1000)
    node.create_subscription(
        JointState, "/joint_states",
        lambda m: states.append(np.array(
            [dict(zip(m.name, m.position, strict=True))[n] for n in RARM_JOINTS]
            + [dict(zip(m.name, m.velocity, strict=True))[n] for n in RARM_JOINTS])), 1000)
    obstacles: list[np.ndarray] = []  # the observation slots of each episode's MarkerArray
    latched = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(
        String, "/task/episode", lambda m: markers.append(json.loads(m.data)), latched)
    node.create_subscription(
        MarkerArray, "/task/obstacles", lambda m: obstacles.append(obstacle_features(
            obstacles_from_markers(m.markers, MAX_OBSTACLES))), latched)
    demonstrator = None
    try:
        # The sim streams /joint_states from the start; wait for it and for the recorder.
        assert spin_until(node, lambda: len(states) > 5), (tmp_path / "sim.log").read_text()
        assert spin_until(node, lambda: "recorder_node" in _subscribers(node, "/task/episode")
                          and "recorder_node" in _subscribers(node, "/joint_states"))
        # The recorder subscribes to the command topic once a publisher exists; the
        # demonstrator waits for the sim's services first, which leaves discovery time.
        demonstrator = start_node(
            "mberil_ros.nodes.demonstrator_node",
            {"expert_episodes": 2, "suboptimal_episodes": 1, "seed": 7, "use_sim_time": True,
             "min_command_subscribers": 3},  # sim, recorder and this listener
            tmp_path / "demonstrator.log")
        assert spin_until(node, lambda: demonstrator.poll() is not None, timeout=120)
        assert demonstrator.returncode == 0, (tmp_path / "demonstrator.log").read_text()
        spin_until(node, lambda: False, timeout=0.5)  # let the last messages arrive
    finally:
        if demonstrator is not None:
            stop_node(demonstrator)
        recorder_code = stop_node(recorder)
        stop_node(sim)
        node.destroy_node()
        rclpy.shutdown()
    assert recorder_code == 0, (tmp_path / "recorder.log").read_text()

    assert commands, "the listener received no command"
    ends = [m for m in markers if m["event"] == "end"]
    assert [m["demonstrator"] for m in ends] == ["expert", "expert", "noisy"]
    assert cli_main(["convert", str(bag), "-o", str(dataset)]) == 0

    data = Dataset(dataset)
    obstacles_topic = data.info["config"]["topics"]["obstacles"]
    assert obstacles_topic["type"] == "visualization_msgs/msg/MarkerArray"
    assert data.num_episodes == 3
    assert [e["label"] for e in data.episodes] == ["expert", "expert", "suboptimal"]
    assert [e["seed"] for e in data.episodes] == [7, 8, 9]
    assert [bool(e["success"]) for e in data.episodes] == [bool(m["success"]) for m in ends]

    commanded = np.array([c[:6] for c in commands])  # controller order: RARM first
    published = np.array(states)
    for episode in data.iter_episodes():
        assert len(episode) > 5
        # Every action is one of the commands sent, in order; every state one the sim sent.
        last_cmd = last_state = -1
        offsets = set()
        for obs, action in zip(episode.observation, episode.action, strict=True):
            cmd_hits = np.flatnonzero(np.all(np.abs(commanded - action) < 1e-5, axis=1))
            state_hits = np.flatnonzero(
                np.all(np.abs(published - obs[RIGHT.qpos.start:RIGHT.qvel.stop]) < 1e-5, axis=1))
            assert cmd_hits.size, f"episode {episode.index}: action {action} never commanded"
            assert state_hits.size, f"episode {episode.index}: state {obs[:12]} never published"
            last_cmd = cmd_hits[cmd_hits > last_cmd].min()  # one new command per tick
            last_state = state_hits[state_hits > last_state].min()  # states strictly advance
            offsets.add(int(last_state - last_cmd))
        # Lockstep: the k-th state of an episode is paired with the k-th command (the one
        # computed from it), so the offset between the two streams never changes.
        assert len(offsets) == 1, f"episode {episode.index}: state/action pairing drifts"
        goal = episode.meta.get("goal")
        if goal is not None:
            expected = np.tile(goal, (len(episode), 1))
            np.testing.assert_allclose(episode.observation[:, RIGHT.goal], expected, atol=1e-6)
        np.testing.assert_allclose(episode.next_observation[:-1], episode.observation[1:])
        # Obstacle slots (position, size, kind) are what the sim published for the episode.
        expected = np.tile(obstacles[episode.meta["source_episode"]], (len(episode), 1))
        np.testing.assert_allclose(episode.observation[:, RIGHT.obstacles], expected, atol=1e-6)


def test_record_command_rejects_bad_input(tmp_path, capsys):
    (tmp_path / "exists").mkdir()
    assert cli_main(["record", "-o", str(tmp_path / "exists")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["record", "-o", str(tmp_path / "b"), "--suite", "nope"]) == 2
    assert "unknown suite" in capsys.readouterr().err
    assert cli_main(["record", "-o", str(tmp_path / "b"), "--episodes", "0",
                     "--suboptimal", "0"]) == 2
    assert "nothing to record" in capsys.readouterr().err
    config = tmp_path / "record.yaml"
    config.write_text("output: x\nepisodez: 3\n")
    assert cli_main(["record", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}: unknown config key 'episodez'" in err and "expert_episodes" in err
    assert cli_main(["record", "-o", str(tmp_path / "b"), "suitx=train"]) == 2
    assert "unknown config key 'record.suitx'" in capsys.readouterr().err
    assert cli_main(["record", "-o", str(tmp_path / "b"), "--storage", "rosbag1"]) == 2
    assert "storage must be one of ['mcap', 'sqlite3']" in capsys.readouterr().err
    assert cli_main(["record", "-o", str(tmp_path / "b"), "--max-bag-size", "-1"]) == 2
    assert "max_bag_size must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


pytestmark = pytest.mark.ros
