"""The recorder's bag writer (data/bag_recording.py) without ROS: split files are each complete
and read on their own, the folder reads as one bag, and it converts as an unsplit bag does."""

from __future__ import annotations

import numpy as np
import pytest
from mcap.reader import make_reader
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from mberil_ros.cli import main
from mberil_ros.data.bag_metadata import read_metadata
from mberil_ros.data.bag_recording import BagRecording
from mberil_ros.data.dataset import Dataset
from mberil_ros.data.mcap_scan import mcap_complete
from mberil_ros.data.synthetic import MessageFactory, demo_messages
from mberil_ros.errors import UserError

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
NS = 1_000_000_000


def record(path, storage, msgs, factory, flush_every=100, **limits):
    """What recorder_node does, with a flush every ``flush_every`` messages for its timer."""
    with BagRecording(path, storage, **limits) as bag:
        for i, m in enumerate(msgs):
            bag.add_topic(m.topic, m.msgtype)
            bag.write(m.topic, m.t_ns, factory.serialize(m.msg, m.msgtype))
            if i % flush_every == flush_every - 1:
                bag.flush()
    return path


def read_all(path):
    with AnyReader([path], default_typestore=TYPESTORE) as reader:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("limits", [{"max_bag_duration": 2.0}, {"max_bag_size": 40_000}])
def test_split_files_are_each_complete_and_the_folder_is_one_bag(tmp_path, storage, limits):
    f = MessageFactory()
    msgs = list(demo_messages(f, episodes=3))
    whole = record(tmp_path / "whole", storage, msgs, f)
    split = record(tmp_path / "split", storage, msgs, f, **limits)

    info = read_metadata(split)
    names = info["relative_file_paths"]
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert names == [f"split_{i}{suffix}" for i in range(len(names))] and len(names) >= 3
    assert sorted(p.name for p in split.iterdir()) == sorted([*names, "metadata.yaml"])
    assert [e["message_count"] for e in info["files"]] == [
        len(read_all(split / name)) for name in names]  # each file reads on its own
    assert info["message_count"] == len(msgs)
    for entry in info["files"]:
        duration = entry["duration"]["nanoseconds"]
        if "max_bag_duration" in limits:
            assert duration < limits["max_bag_duration"] * NS
    if storage == "mcap":
        assert all(mcap_complete(split / name) for name in names)
        with (split / names[-1]).open("rb") as stream:
            reader = make_reader(stream)
            assert reader.get_header().profile == "ros2"
            summary = reader.get_summary()
        channel = next(c for c in summary.channels.values() if c.topic == "/joint_states")
        assert channel.metadata["topic_type_hash"] == TYPESTORE.hash_rihs01(
            "sensor_msgs/msg/JointState")
        assert summary.schemas[channel.schema_id].encoding == "ros2msg"

    expected = [(m.topic, m.t_ns, f.serialize(m.msg, m.msgtype)) for m in msgs]
    key = lambda m: (m[1], m[0])  # noqa: E731 - equal stamps: the order is the writer's
    assert sorted(read_all(split), key=key) == sorted(expected, key=key)

    for bag in (whole, split):
        assert main(["convert", str(bag), "-o", str(tmp_path / f"{bag.name}.ds"),
                     "--no-progress"]) == 0
    a, b = Dataset(tmp_path / "whole.ds"), Dataset(tmp_path / "split.ds")
    assert a.num_episodes == b.num_episodes == 3
    for x, y in zip(a.iter_episodes(), b.iter_episodes(), strict=True):
        np.testing.assert_array_equal(x.observation, y.observation)
        np.testing.assert_array_equal(x.action, y.action)


def test_bad_limits_and_an_existing_output_are_refused(tmp_path):
    with pytest.raises(UserError, match="max_bag_duration and max_bag_size must be >= 0"):
        BagRecording(tmp_path / "a", max_bag_duration=-1.0)
    with pytest.raises(UserError, match="unknown distro"):
        BagRecording(tmp_path / "b", distro="ROS2_NOPE")
    (tmp_path / "c").mkdir()
    with pytest.raises(UserError, match="output bag already exists"):
        BagRecording(tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_a_late_message_after_a_split_goes_into_the_file_of_its_time(tmp_path):
    """Topics arrive in their own order: a message stamped before the split that comes after
    it still goes into the earlier file, so the files hold disjoint time ranges in order."""
    f = MessageFactory()
    msgs = list(demo_messages(f, episodes=2))
    split = next(i for i, m in enumerate(msgs) if m.t_ns - msgs[0].t_ns >= 2 * NS)
    late = next(i for i in range(split - 1, 0, -1) if msgs[i].topic == "/joint_states")
    order = [*range(late), *range(late + 1, split + 3), late, *range(split + 3, len(msgs))]
    bag = record(tmp_path / "bag", "mcap", [msgs[i] for i in order], f, max_bag_duration=2.0)
    files = read_metadata(bag)["files"]
    assert len(files) >= 2
    for a, b in zip(files, files[1:], strict=False):
        a_end = a["starting_time"]["nanoseconds_since_epoch"] + a["duration"]["nanoseconds"]
        assert a_end < b["starting_time"]["nanoseconds_since_epoch"]
    first = read_all(bag / files[0]["path"])
    assert (msgs[late].topic, msgs[late].t_ns) in [(t, s) for t, s, _ in first]
