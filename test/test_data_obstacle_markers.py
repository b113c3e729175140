"""/task/obstacles as visualization_msgs/MarkerArray: the contract, and bags converting into
the observation's obstacle slots (position, half-extents, kind, present)."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from mberil_ros.cli import main
from mberil_ros.data.dataset import Dataset
from mberil_ros.data.synthetic import (
    MARKER_ARRAY,
    MessageFactory,
    Msg,
    demo_messages,
    write_bag,
)
from mberil_ros.sim import obstacle_markers as om
from mberil_ros.sim import spaces
from mberil_ros.sim.observation import obstacle_features
from mberil_ros.sim.obstacle_markers import obstacles_from_markers
from mberil_ros.sim.scene import Obstacle

BOX = Obstacle.box((0.3, -0.1, 0.05), (0.04, 0.06, 0.2))
BALL = Obstacle.sphere((0.25, -0.25, 0.1), 0.04)


def _markers(f: MessageFactory, *specs) -> list:
    """specs: (obstacle or None for DELETEALL, id) pairs, in message order."""
    return [f.marker(0, ob, slot) for ob, slot in specs]


def test_slots_carry_position_half_extents_kind_and_presence():
    slots = obstacle_features([BOX, BALL]).reshape(spaces.MAX_OBSTACLES, spaces.OBSTACLE_WIDTH)
    np.testing.assert_allclose(slots, [[0.3, -0.1, 0.05, 0.02, 0.03, 0.1, 0, 1],
                                       [0.25, -0.25, 0.1, 0.04, 0.04, 0.04, 1, 1],
                                       [0, 0, 0, 0, 0, 0, 0, 0]])
    assert spaces.obstacle_names(1) == [f"obstacle0.{n}" for n in spaces.OBSTACLE_FIELDS]
    assert spaces.RIGHT.obs_dim == 6 + 6 + 3 + spaces.MAX_OBSTACLES * spaces.OBSTACLE_WIDTH
    assert len(spaces.RIGHT.state_names) == spaces.RIGHT.obs_dim
    assert len(spaces.BOTH.state_names) == spaces.BOTH.obs_dim


def test_marker_semantics_delete_all_delete_and_id_order():
    f = MessageFactory()
    # a stale box (id 5) is cleared by DELETEALL; id 2 is added then deleted; slots by id
    markers = _markers(f, (BOX, 5), (None, 0), (BALL, 3), (BOX, 1), (BOX, 2))
    markers.append(replace(f.marker(0, BOX, 2), action=om.DELETE))
    assert obstacles_from_markers(markers, 3) == [BOX, BALL]
    assert obstacles_from_markers([], 3) == []
    # an all-zero quaternion is identity, as RViz takes it
    zero_q = f.marker(0, BOX, 0)
    zero_q.pose.orientation.w = 0.0
    assert obstacles_from_markers([zero_q], 3) == [BOX]


@pytest.mark.parametrize("edit,message", [
    (lambda m: replace(m, header=replace(m.header, frame_id="map")),
     "markers[0].header.frame_id is 'map', expected 'WAIST'"),
    (lambda m: replace(m, type=3), "markers[0].type is 3; obstacles are CUBE (1) or SPHERE (2)"),
    (lambda m: replace(m, action=1), "markers[0].action is 1"),
    (lambda m: replace(m, scale=replace(m.scale, y=0.0)), "markers[0].scale.y must be"),
    (lambda m: replace(m, pose=replace(m.pose, orientation=replace(
        m.pose.orientation, z=0.7071, w=0.7071))), "markers[0].pose.orientation must be identity"),
])
def test_bad_markers_name_the_field(edit, message):
    f = MessageFactory()
    with pytest.raises(ValueError, match=re.escape(message)):
        obstacles_from_markers([edit(f.marker(0, BOX, 0))], 3)
    egg = replace(f.marker(0, BALL, 0), scale=replace(f.marker(0, BALL, 0).scale, z=0.1))
    with pytest.raises(ValueError, match="a SPHERE needs equal x, y, z"):
        obstacles_from_markers([egg], 3)
    with pytest.raises(ValueError, match="4 obstacle markers but max_obstacles is 3"):
        obstacles_from_markers(_markers(f, *[(BOX, i) for i in range(4)]), 3)


@pytest.mark.parametrize("storage", ["mcap", "ros1"])
def test_marker_array_bag_converts_into_obstacle_slots(tmp_path, storage):
    f = MessageFactory(ros1=storage == "ros1")
    msgs = [m for m in demo_messages(f, episodes=2, obstacles=0) if m.topic != "/task/obstacles"]
    # Episode 0 sees a box and a sphere; episode 1 only a sphere, with the box's id deleted.
    setups = [m.t_ns for m in msgs if m.topic == "/task/goal"]
    first = f.marker_array(setups[0], [BOX, BALL])
    second = f.t["visualization_msgs/msg/MarkerArray"](markers=[
        replace(f.marker(setups[1], BOX, 0), action=om.DELETE), f.marker(setups[1], BALL, 1)])
    msgs += [Msg("/task/obstacles", MARKER_ARRAY, setups[0] + 2, first),
             Msg("/task/obstacles", MARKER_ARRAY, setups[1] + 2, second)]
    msgs.sort(key=lambda m: m.t_ns)
    bag = write_bag(tmp_path / ("bag.bag" if storage == "ros1" else "bag"), msgs, storage)
    assert main(["convert", str(bag), "-o", str(tmp_path / "ds"), "--no-progress"]) == 0
    ds = Dataset(tmp_path / "ds")
    assert ds.feature_names("observation.state") == spaces.RIGHT.state_names
    ob = spaces.RIGHT.obstacles
    for episode, obstacles in zip(ds.iter_episodes(), ([BOX, BALL], [BALL]), strict=True):
        expected = np.tile(obstacle_features(obstacles), (len(episode), 1))
        np.testing.assert_allclose(episode.observation[:, ob], expected, rtol=1e-6, atol=1e-7)


def test_bad_marker_in_bag_is_a_one_line_error_naming_topic_and_field(tmp_path, capsys):
    f = MessageFactory()
    msgs = []
    for m in demo_messages(f, episodes=1):
        if m.topic == "/task/obstacles":
            bad = replace(m.msg.markers[1], header=replace(m.msg.markers[1].header,
                                                           frame_id="base_link"))
            m = Msg(m.topic, m.msgtype, m.t_ns, replace(m.msg, markers=[m.msg.markers[0], bad]))
        msgs.append(m)
    bag = write_bag(tmp_path / "bag", msgs)
    assert main(["convert", str(bag), "-o", str(tmp_path / "ds"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "topic /task/obstacles" in err
    assert "markers[1].header.frame_id is 'base_link', expected 'WAIST'" in err
