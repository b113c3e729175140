"""`mberil convert` on plain lab recordings (no /task/episode markers), arm checks, and
failed expert episodes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_data_convert import _check_against_published

from mberil_ros.cli import main
from mberil_ros.data.config import LEFT, RIGHT
from mberil_ros.data.dataset import Dataset
from mberil_ros.data.synthetic import MessageFactory, Msg, demo_messages, write_bag
from mberil_ros.robot_description import RobotDescription
from mberil_ros.sim import spaces

NS = 1_000_000_000
PLAIN = ("/joint_states", "/forward_position_controller/commands")


def _plain(msgs, drop_commands=None):
    """Only joint states and commands, as `ros2 bag record /joint_states /..commands` gives."""
    out = [m for m in msgs if m.topic in PLAIN]
    if drop_commands is not None:
        lo, hi = drop_commands
        out = [m for m in out if not (m.topic == PLAIN[1] and lo <= m.t_ns / NS < hi)]
    return out


def _hand(q: dict[str, float], hand: str) -> np.ndarray:
    return RobotDescription.from_xacro().forward_kinematics(q)[spaces.HAND_LINKS[hand]][:3, 3]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_one_episode_per_bag_without_markers(tmp_path, capsys, storage):
    f = MessageFactory()
    streams = [_plain(demo_messages(f, episodes=1, episode_s=2.0, jitter_s=0.003,
                                    shuffle_joints=True, seed=s)) for s in (1, 2)]
    bags = [write_bag(tmp_path / f"demo{i}", m, storage) for i, m in enumerate(streams)]
    out = tmp_path / "ds"
    assert main(["convert", *map(str, bags), "--label", "suboptimal", "-o", str(out),
                 "--no-progress"]) == 0
    report = capsys.readouterr().out
    assert "episodes from one episode per bag (no markers): 2 bag(s)" in report
    assert "/task/goal not in the bag: goal = the hand's final position" in report
    assert "/task/obstacles not in the bag: no obstacles" in report

    ds = Dataset(out)
    assert ds.num_episodes == 2
    assert [ds.episode(i).meta["label"] for i in range(2)] == ["suboptimal"] * 2
    assert ds.info["report"]["episode_rules"] == {str(b): "bag" for b in bags}
    # states and actions map by name despite the per-message joint order and the jitter
    for i, msgs in enumerate(streams):
        ep = ds.episode(i)
        commands = [m for m in msgs if m.topic == PLAIN[1]]
        assert ep.meta["start_time_ns"] == commands[0].t_ns
        assert ep.meta["end_time_ns"] == commands[-1].t_ns
        # the goal is where the hand ended: FK of the last frame's next state
        final = dict(zip(RIGHT, ep.next_observation[-1, :6], strict=True))
        goal = ep.observation[:, spaces.RIGHT.goal]
        np.testing.assert_allclose(goal, np.repeat(_hand(final, "right")[None], len(ep), 0),
                                   atol=1e-6)
        assert not ep.observation[:, spaces.RIGHT.obstacles].any()
    # each bag is checked against its own messages (episode i of the dataset = bag i)
    for i, msgs in enumerate(streams):
        single = tmp_path / f"single{i}"
        assert main(["convert", str(bags[i]), "-o", str(single), "--no-progress"]) == 0
        ds_i = Dataset(single)
        assert ds_i.episode(0).meta["label"] == "expert"  # the default label
        _check_against_published(ds_i, msgs)


def test_split_gap_cuts_at_command_pauses(tmp_path, capsys):
    msgs = _plain(demo_messages(MessageFactory(), episodes=1, episode_s=4.0),
                  drop_commands=(101.0, 102.0))
    bag = write_bag(tmp_path / "long", msgs)
    out = tmp_path / "ds"
    assert main(["convert", str(bag), "--split-gap", "0.5", "-o", str(out),
                 "--no-progress"]) == 0
    assert "split at command pauses (--split-gap): 1 bag(s)" in capsys.readouterr().out
    ds = Dataset(out)
    assert ds.num_episodes == 2
    first, second = ds.episode(0), ds.episode(1)
    assert first.meta["end_time_ns"] < 101.0 * NS <= 102.0 * NS <= second.meta["start_time_ns"]
    _check_against_published(ds, msgs)
    # without --split-gap the pause is one dropped stretch: the episode is split there too,
    # but as one source episode in two parts (never a transition across the pause)
    out2 = tmp_path / "ds2"
    assert main(["convert", str(bag), "-o", str(out2), "--no-progress"]) == 0
    ds2 = Dataset(out2)
    assert {ds2.episode(i).meta["source_episode"] for i in range(ds2.num_episodes)} == {0}
    _check_against_published(ds2, msgs)


def test_a_bag_that_drives_the_other_arm_is_refused(tmp_path, capsys):
    msgs = _plain(demo_messages(MessageFactory(), episodes=1, driven=[*RIGHT, *LEFT]))
    bag = write_bag(tmp_path / "both", msgs)
    assert main(["convert", str(bag), "-o", str(tmp_path / "ds"), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "/forward_position_controller/commands" in err and "LARM_JOINT0" in err
    assert "--arm both" in err
    assert not (tmp_path / "ds").exists()
    # with --arm both it converts: 12 joints, both goals from the final hands
    out = tmp_path / "ds_both"
    assert main(["convert", str(bag), "--arm", "both", "-o", str(out), "--no-progress"]) == 0
    ds = Dataset(out)
    assert ds.frames()["action"].shape[1] == 12
    ep = ds.episode(0)
    final = dict(zip([*RIGHT, *LEFT], ep.next_observation[-1, :12], strict=True))
    goals = ep.observation[0, spaces.BOTH.goal].reshape(2, 3)
    for goal, hand in zip(goals, ("right", "left"), strict=True):
        np.testing.assert_allclose(goal, _hand(final, hand), atol=1e-6)


def test_left_goal_or_arm_in_markers_refuses_a_one_arm_dataset(tmp_path, capsys):
    both = write_bag(tmp_path / "both", demo_messages(MessageFactory(), left_goal=True))
    assert main(["convert", str(both), "-o", str(tmp_path / "ds"), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "/task/goal_left has messages" in err and "--arm both" in err

    def with_arm(m: Msg) -> Msg:
        if m.topic == "/task/episode":
            data = json.loads(m.msg.data)
            data["arm"] = "left"
            return Msg(m.topic, m.msgtype, m.t_ns, MessageFactory().string(json.dumps(data)))
        return m

    left = write_bag(tmp_path / "left", map(with_arm, demo_messages(MessageFactory())))
    assert main(["convert", str(left), "-o", str(tmp_path / "ds"), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "recorded with arm left but the dataset's arm is right" in err


def _failed_expert_bag(tmp_path):
    def fail(m: Msg) -> Msg:
        if m.topic == "/task/episode" and json.loads(m.msg.data) == {
                "event": "end", "episode": 0, "success": True}:
            text = json.dumps({"event": "end", "episode": 0, "success": False})
            return Msg(m.topic, m.msgtype, m.t_ns, MessageFactory().string(text))
        return m

    return write_bag(tmp_path / "bag", map(fail, demo_messages(
        MessageFactory(), episodes=3, labels=("expert",))))


def test_failed_expert_episodes_are_never_labelled_expert(tmp_path, capsys):
    bag = _failed_expert_bag(tmp_path)
    out = tmp_path / "ds"
    assert main(["convert", str(bag), "-o", str(out), "--no-progress"]) == 0
    assert "bag#0 (dropped)" in capsys.readouterr().out
    ds = Dataset(out)
    assert [ds.episode(i).meta["source_episode"] for i in range(ds.num_episodes)] == [1, 2]
    assert ds.info["report"]["failed_expert"] == {"bag#0": "dropped"}

    cfg = tmp_path / "keep.yaml"
    cfg.write_text("failed_expert: suboptimal\n")
    out2 = tmp_path / "ds2"
    assert main(["convert", str(bag), "--config", str(cfg), "-o", str(out2),
                 "--no-progress"]) == 0
    ds2 = Dataset(out2)
    labels = [ds2.episode(i).meta["label"] for i in range(ds2.num_episodes)]
    assert labels == ["suboptimal", "expert", "expert"]


def test_config_keys_are_set_on_the_command_line(tmp_path, capsys):
    """`mberil convert BAG key.sub=value`: a lab's own topic names without a YAML file."""
    msgs = [Msg("/robot/joint_states", m.msgtype, m.t_ns, m.msg) if m.topic == PLAIN[0] else m
            for m in _plain(demo_messages(MessageFactory(), episodes=1))]
    bag = write_bag(tmp_path / "lab", msgs)
    out = tmp_path / "ds"
    assert main(["convert", str(bag), "-o", str(out), "--no-progress"]) != 0
    assert "topic /joint_states not in the bag" in capsys.readouterr().err
    assert main(["convert", str(bag), "topics.joint_states.name=/robot/joint_states", "fps=25",
                 "-o", str(out), "--no-progress"]) == 0
    ds = Dataset(out)
    assert ds.info["fps"] == 25 and ds.num_episodes == 1
    assert main(["convert", str(bag), "topics.joint_states.nme=/x", "-o", str(tmp_path / "e"),
                 "--no-progress"]) != 0
    assert "topics.joint_states: unknown key(s) ['nme']" in capsys.readouterr().err
