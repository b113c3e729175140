"""Bad input to `mberil convert`: one-line error naming file/topic, exit 2, nothing on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mberil_ros.cli import main
from mberil_ros.data.synthetic import MessageFactory, Msg, demo_messages, write_bag

NS = 1_000_000_000


def _convert_fails(tmp_path, capsys, bag, *extra, out_name="ds"):
    out = tmp_path / out_name
    code = main(["convert", str(bag), "-o", str(out), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("mberil convert: error: ")
    # no dataset and no temporary folder left next to it
    prefixes = (out_name, f".{out_name}")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(prefixes)]
    return err, leftovers


def _msgs(**kw):
    return list(demo_messages(MessageFactory(), **kw))


def _edit_first_in_episode(msgs, topic, make):
    """Replace the first message on ``topic`` inside episode 0 (so it is sampled)."""
    start = next(m.t_ns for m in msgs if m.topic == "/task/episode")
    for i, m in enumerate(msgs):
        if m.topic == topic and m.t_ns >= start + NS // 2:
            msgs[i] = make(m)
            return msgs
    raise AssertionError(topic)


def test_missing_topic(tmp_path, capsys):
    bag = write_bag(tmp_path / "bag", [m for m in _msgs() if m.topic != "/task/obstacles"])
    err, left = _convert_fails(tmp_path, capsys, bag)
    assert "topic /task/obstacles not in the bag" in err and str(bag) in err
    assert left == []


def test_topic_with_wrong_type(tmp_path, capsys):
    f = MessageFactory()
    msgs = [m if m.topic != "/task/goal" else Msg(m.topic, "std_msgs/msg/String", m.t_ns,
                                                   f.string("not a pose"))
            for m in _msgs()]
    bag = write_bag(tmp_path / "bag", msgs)
    err, left = _convert_fails(tmp_path, capsys, bag)
    assert ("topic /task/goal has type std_msgs/msg/String, expected "
            "geometry_msgs/msg/PoseStamped") in err
    assert left == []


def test_custom_unknown_type(tmp_path, capsys):
    """A topic recorded with a message type that is not the configured one (custom package)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from rosbags.typesys.msg import get_types_from_msg

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg("float64[] q\nstring[] joint", "my_robot/msg/Weird"))
    f = MessageFactory()
    bag = tmp_path / "bag"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {}
        for m in _msgs():
            topic, typ = m.topic, m.msgtype
            if topic == "/joint_states":
                typ = "my_robot/msg/Weird"
                raw = store.serialize_cdr(store.types[typ](q=np.zeros(2), joint=["a", "b"]), typ)
            else:
                raw = f.serialize(m.msg, typ)
            if topic not in conns:
                conns[topic] = w.add_connection(topic, typ, typestore=store)
            w.write(conns[topic], m.t_ns, raw)
    err, left = _convert_fails(tmp_path, capsys, bag)
    assert "topic /joint_states has type my_robot/msg/Weird" in err
    assert left == []


@pytest.mark.parametrize("storage", ["mcap", "sqlite3", "ros1"])
def test_truncated_or_corrupt_bag(tmp_path, capsys, storage):
    f = MessageFactory(ros1=storage == "ros1")
    bag = write_bag(tmp_path / ("b.bag" if storage == "ros1" else "b"),
                    demo_messages(f, episodes=3), storage)
    files = [bag] if bag.is_file() else [p for p in bag.iterdir() if p.suffix != ".yaml"]
    target = files[0]
    data = target.read_bytes()
    if storage == "sqlite3":  # corrupt the middle of the database pages
        mid = len(data) // 2
        target.write_bytes(data[:mid] + b"\xff" * 4096 + data[mid + 4096:])
    else:  # cut the file
        target.write_bytes(data[: len(data) * 2 // 3])
    err, left = _convert_fails(tmp_path, capsys, bag)
    assert str(bag) in err
    assert left == []


def test_decreasing_header_stamps(tmp_path, capsys):
    msgs = _msgs()
    f = MessageFactory()
    js = [i for i, m in enumerate(msgs) if m.topic == "/joint_states"]
    i = js[200]  # inside episode 0; give it a stamp 1 s in the past
    old = msgs[i].msg
    stamp = old.header.stamp.sec * NS + old.header.stamp.nanosec - NS
    msgs[i] = Msg(msgs[i].topic, msgs[i].msgtype, msgs[i].t_ns,
                  f.joint_state(stamp, old.name, old.position, old.velocity))
    bag = write_bag(tmp_path / "bag", msgs)
    err, left = _convert_fails(tmp_path, capsys, bag, "--timestamps", "header")
    assert "topic /joint_states: decreasing timestamps" in err
    assert left == []


def test_nan_values(tmp_path, capsys):
    f = MessageFactory()

    def nan_cmd(m):
        data = np.array(m.msg.data)
        data[2] = np.nan
        return Msg(m.topic, m.msgtype, m.t_ns, f.float64_array(data))

    msgs = _edit_first_in_episode(_msgs(), "/forward_position_controller/commands", nan_cmd)
    bag = write_bag(tmp_path / "bag", msgs)
    err, left = _convert_fails(tmp_path, capsys, bag)
    assert "topic /forward_position_controller/commands" in err
    assert "data[2] (RARM_JOINT2) is nan" in err
    assert left == []


def test_joint_missing_from_some_messages(tmp_path, capsys):
    f = MessageFactory()

    def drop_joint(m):
        keep = [k for k, n in enumerate(m.msg.name) if n != "RARM_JOINT3"]
        return Msg(m.topic, m.msgtype, m.t_ns, f.joint_state(
            int(m.t_ns), [m.msg.name[k] for k in keep], m.msg.position[keep],
            m.msg.velocity[keep]))

    msgs = _edit_first_in_episode(_msgs(), "/joint_states", drop_joint)
    bag = write_bag(tmp_path / "bag", msgs)
    err, left = _convert_fails(tmp_path, capsys, bag)
    assert "topic /joint_states" in err and "RARM_JOINT3 missing" in err
    assert left == []


def test_bad_episode_marker(tmp_path, capsys):
    f = MessageFactory()
    msgs = [m if not (m.topic == "/task/episode" and "start" in m.msg.data) else
            Msg(m.topic, m.msgtype, m.t_ns, f.string(json.dumps(
                {**json.loads(m.msg.data), "label": "great"})))
            for m in _msgs()]
    bag = write_bag(tmp_path / "bag", msgs)
    err, left = _convert_fails(tmp_path, capsys, bag)
    assert "topic /task/episode" in err and "label must be one of" in err
    assert left == []


def test_existing_output_and_overwrite(tmp_path, capsys):
    bag = write_bag(tmp_path / "bag", _msgs())
    out = tmp_path / "ds"
    out.mkdir()
    (out / "precious.txt").write_text("x")
    err, _ = _convert_fails(tmp_path, capsys, bag)
    assert "already exists" in err and (out / "precious.txt").exists()
    # --overwrite refuses a folder that is not a dataset
    err, _ = _convert_fails(tmp_path, capsys, bag, "--overwrite")
    assert "not a dataset" in err and (out / "precious.txt").exists()
    (out / "precious.txt").unlink()
    out.rmdir()

    assert main(["convert", str(bag), "-o", str(out), "--no-progress"]) == 0
    first = (out / "meta" / "info.json").read_text()
    # a failing --overwrite run keeps the old dataset intact
    broken = write_bag(tmp_path / "broken", [m for m in _msgs() if m.topic != "/joint_states"])
    err, _ = _convert_fails(tmp_path, capsys, broken, "--overwrite")
    assert "/joint_states not in the bag" in err
    assert (out / "meta" / "info.json").read_text() == first
    # a succeeding one replaces it
    bag2 = write_bag(tmp_path / "bag2", _msgs(episodes=3))
    assert main(["convert", str(bag2), "-o", str(out), "--no-progress", "--overwrite"]) == 0
    assert json.loads((out / "meta" / "info.json").read_text())["total_episodes"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "bag2", "broken", "ds"]


