"""`mberil convert` on real bags (rosbag2 MCAP + sqlite3, ROS 1) written by rosbags."""

from __future__ import annotations

import bisect
import json

import numpy as np
import pytest

from mberil_ros.cli import main
from mberil_ros.data.config import LEFT, RIGHT
from mberil_ros.data.dataset import Dataset
from mberil_ros.data.synthetic import MessageFactory, demo_messages, write_bag
from mberil_ros.sim import spaces

NS = 1_000_000_000
DT = NS // 50


def _latest(msgs, topic, tick):
    """The last message on ``topic`` received at or before ``tick`` (ground truth)."""
    on_topic = [m for m in msgs if m.topic == topic]
    i = bisect.bisect_right([m.t_ns for m in on_topic], tick) - 1
    assert i >= 0
    return on_topic[i]


def _joint_values(msg, joints):
    index = {n: i for i, n in enumerate(msg.name)}
    cols = [index[j] for j in joints]
    return np.concatenate([np.asarray(msg.position)[cols], np.asarray(msg.velocity)[cols]])


def _ticks(ds, ep):
    first = -(-ep.meta["start_time_ns"] // DT) * DT
    return first + np.round(ep.timestamp.astype(np.float64) * 50).astype(np.int64) * DT


def _check_against_published(ds, msgs, joints=RIGHT, action_topic="commands"):
    ctrl = [*RIGHT, *LEFT]
    for ep in ds.iter_episodes():
        for k, tick in enumerate(_ticks(ds, ep)):
            js = _latest(msgs, "/joint_states", tick)
            n = 2 * len(joints)
            np.testing.assert_allclose(ep.observation[k, :n], _joint_values(js.msg, joints),
                                       rtol=1e-6, atol=1e-6)
            nxt = _latest(msgs, "/joint_states", tick + DT)
            np.testing.assert_allclose(ep.next_observation[k, :n], _joint_values(nxt.msg, joints),
                                       rtol=1e-6, atol=1e-6)
            if action_topic == "commands":
                cmd = _latest(msgs, "/forward_position_controller/commands", tick)
                expected = np.asarray(cmd.msg.data)[[ctrl.index(j) for j in joints]]
            else:
                traj = _latest(msgs, "/joint_trajectory_controller/joint_trajectory", tick).msg
                idx = {n: i for i, n in enumerate(traj.joint_names)}
                expected = np.asarray(traj.points[0].positions)[[idx[j] for j in joints]]
            np.testing.assert_allclose(ep.action[k], expected, rtol=1e-6, atol=1e-6)
        # within an episode, next state of frame i is the state of frame i+1
        np.testing.assert_array_equal(ep.next_observation[:-1], ep.observation[1:])
        assert ep.done[-1] and not ep.done[:-1].any()


@pytest.mark.parametrize("storage", ["mcap", "sqlite3", "ros1"])
def test_convert_matches_published(tmp_path, storage, capsys):
    factory = MessageFactory(ros1=storage == "ros1")
    msgs = list(demo_messages(factory, jitter_s=0.003, shuffle_joints=True, seed=3))
    bag = write_bag(tmp_path / ("demo.bag" if storage == "ros1" else "demo"), msgs, storage)
    out = tmp_path / "ds"
    assert main(["convert", str(bag), "-o", str(out), "--no-progress"]) == 0
    report = capsys.readouterr().out
    assert "/joint_states" in report and "episodes: 2 (expert: 1, suboptimal: 1)" in report

    ds = Dataset(out)
    assert ds.num_episodes == 2
    assert ds.info["sources"][0]["storage"] == storage
    assert len(ds.info["sources"][0]["sha256"]) == 64
    assert ds.info["converter"]["version"]
    obs = ds.frames()["observation.state"]
    assert obs.shape[1] == spaces.RIGHT.obs_dim and ds.frames()["action"].shape[1] == 6
    assert ds.feature_names("observation.state") == spaces.RIGHT.state_names
    _check_against_published(ds, msgs)

    ep0, ep1 = ds.episode(0), ds.episode(1)
    assert ep0.meta["label"] == "expert" and ep0.meta["success"] is True
    assert ep1.meta["label"] == "suboptimal" and ep1.meta["success"] is False
    assert ep1.meta["seed"] == 1001 and ep1.meta["suite"] == "train"
    assert json.loads(ep1.meta["task_params"])["target"] == pytest.approx([0.31, -0.2, 0.05])
    # goal and obstacles: a box and a sphere with their half-extents, third slot zeros
    goal, obstacles = spaces.RIGHT.goal, spaces.RIGHT.obstacles
    np.testing.assert_allclose(ep1.observation[:, goal], [[0.31, -0.2, 0.05]] * len(ep1),
                               rtol=1e-6)
    slots = ep1.observation[0, obstacles].reshape(spaces.MAX_OBSTACLES, -1)
    np.testing.assert_allclose(slots, [[0.25, 0, 1.1, 0.02, 0.025, 0.105, 0, 1],
                                       [0.26, -0.1, 1.1, 0.04, 0.04, 0.04, 1, 1],
                                       [0] * 8], rtol=1e-6, atol=1e-7)
    # 2 s at 50 Hz = 101 grid ticks; the last tick only serves as a next state
    assert len(ep0) == 100


def test_topic_stopping_midway_drops_and_counts_frames(tmp_path, capsys):
    factory = MessageFactory()
    msgs = list(demo_messages(factory, episodes=1, episode_s=3.0))
    stop = int(101.5 * NS)  # episode runs 100..103 s
    kept = [m for m in msgs if not (m.topic == "/joint_states" and m.t_ns > stop)]
    bag = write_bag(tmp_path / "bag", kept, "mcap")
    out = tmp_path / "ds"
    assert main(["convert", str(bag), "-o", str(out), "--no-progress"]) == 0
    report = json.loads((out / "meta" / "info.json").read_text())["report"]
    # ticks after 101.5 s + max_age 0.1 s are dropped: 103.0-101.62 -> 70 ticks
    assert report["dropped_frames"] == 70
    assert report["topics"]["bag: /joint_states"]["dropped_frames"] == 70
    ds = Dataset(out)
    # usable ticks 100.00..101.60 (81); each frame needs its successor: 80 frames
    assert len(ds.episode(0)) == 80
