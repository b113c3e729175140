"""Bags whose recording did not end normally (data/bag_recovery.py), without ROS: a writer
killed with SIGKILL keeps every message it flushed; a finished MCAP cut anywhere converts to
a prefix of its episodes or fails in one line; `mberil bag reindex` repairs in place and
`mberil convert` never writes to the bag."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore
from test_bag_recording import read_all, record

from mberil_ros.cli import main
from mberil_ros.data.bagio import sha256_of
from mberil_ros.data.dataset import Dataset
from mberil_ros.data.mcap_scan import mcap_complete
from mberil_ros.data.synthetic import MessageFactory, demo_messages

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
EPISODES = 4
FLUSH_EVERY = 100
NS = 1_000_000_000

# Writes the demo messages as recorder_node would (a flush every FLUSH_EVERY messages, for
# its timer), then is killed with SIGKILL while KILL_AT - last flush messages are unflushed.
WRITER = textwrap.dedent("""
    import os, signal, sys
    from mberil_ros.data.bag_recording import BagRecording
    from mberil_ros.data.synthetic import MessageFactory, demo_messages
    path, storage, kill_at, flush_every, split = sys.argv[1:]
    f = MessageFactory()
    bag = BagRecording(path, storage, max_bag_duration=float(split))
    for i, m in enumerate(demo_messages(f, episodes={episodes})):
        if i == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)
        bag.add_topic(m.topic, m.msgtype)
        bag.write(m.topic, m.t_ns, f.serialize(m.msg, m.msgtype))
        if i % int(flush_every) == int(flush_every) - 1:
            bag.flush()
""").format(episodes=EPISODES)


def convert(bag, out, capsys):
    code = main(["convert", str(bag), "-o", str(out), "--no-progress"])
    return code, capsys.readouterr()


def same_episodes(got: Dataset, reference: Dataset, count: int) -> None:
    """``got`` holds exactly the first ``count`` episodes of ``reference``."""
    assert got.num_episodes == count
    for a, b in zip(got.iter_episodes(), reference.iter_episodes(), strict=False):
        assert a.meta["source_episode"] == b.meta["source_episode"]
        np.testing.assert_array_equal(a.observation, b.observation)
        np.testing.assert_array_equal(a.action, b.action)
        np.testing.assert_array_equal(a.next_observation, b.next_observation)


def ended_within(msgs, count: int) -> int:
    """Episodes whose end marker is among the first ``count`` messages."""
    return sum(m.topic == "/task/episode" and json.loads(m.msg.data)["event"] == "end"
               for m in msgs[:count])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo messages, and the dataset of the bag recorded from them in full."""
    root = tmp_path_factory.mktemp("reference")
    f = MessageFactory()
    msgs = list(demo_messages(f, episodes=EPISODES))
    bag = record(root / "bag", "mcap", msgs, f, flush_every=FLUSH_EVERY)
    assert main(["convert", str(bag), "-o", str(root / "ds"), "--no-progress"]) == 0
    return msgs, bag, Dataset(root / "ds")


@pytest.mark.parametrize("storage, split", [("mcap", 0.0), ("mcap", 3.0), ("sqlite3", 0.0)])
def test_a_killed_writer_keeps_every_flushed_message(tmp_path, capsys, demo, storage, split):
    msgs, _, reference = demo
    kill_at = 1334  # inside the last episode, 34 messages after the last flush: those are lost
    bag = tmp_path / "bag"
    run = subprocess.run([sys.executable, "-c", WRITER, str(bag), storage, str(kill_at),
                          str(FLUSH_EVERY), str(split)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == -9, run.stderr
    assert not (bag / "metadata.yaml").exists()
    flushed = kill_at // FLUSH_EVERY * FLUSH_EVERY
    before = sha256_of(bag)

    code, out = convert(bag, tmp_path / "ds", capsys)
    assert code == 0, out.err
    assert sha256_of(bag) == before  # convert recovered into a temporary copy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "ds"]  # nothing left over
    assert f"recovered {bag}: no metadata.yaml" in out.out
    got = Dataset(tmp_path / "ds")
    same_episodes(got, reference, ended_within(msgs, flushed))
    assert ended_within(msgs, flushed) == EPISODES - 1
    assert got.info["sources"][0]["recovered"] is True
    assert got.info["report"]["recovered"][str(bag)].startswith("no metadata.yaml")
    assert f"left out, no end marker: bag#{EPISODES - 1}" in out.out

    assert main(["bag", "reindex", str(bag)]) == 0
    assert "messages recovered" in capsys.readouterr().out
    f = MessageFactory()
    expected = [(m.topic, m.t_ns, f.serialize(m.msg, m.msgtype)) for m in msgs[:flushed]]
    key = lambda m: (m[1], m[0])  # noqa: E731
    assert sorted(read_all(bag), key=key) == sorted(expected, key=key)
    with AnyReader([bag], default_typestore=TYPESTORE) as reader:
        digests = {c.topic: c.digest for c in reader.connections}
    assert digests["/joint_states"] == TYPESTORE.hash_rihs01("sensor_msgs/msg/JointState")
    if storage == "sqlite3":
        assert not list(bag.glob("*-wal")) and not list(bag.glob("*.orig"))
    else:
        last = sorted(bag.glob("*.mcap"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))[-1]
        assert mcap_complete(last) and (bag / (last.name + ".orig")).exists()
        # split: 3 s of bag time per file, 8.7 s written
        assert len(list(bag.glob("*.mcap"))) == (1 if split == 0 else 3)
    assert main(["bag", "reindex", str(bag)]) == 0  # now complete: nothing to do
    assert "nothing to do" in capsys.readouterr().out


def test_a_writer_killed_right_after_a_split_keeps_all_it_wrote_before_it(tmp_path, capsys, demo):
    msgs = demo[0]
    split = next(i for i, m in enumerate(msgs) if m.t_ns - msgs[0].t_ns >= 3 * NS)
    bag = tmp_path / "bag"
    run = subprocess.run([sys.executable, "-c", WRITER, str(bag), "mcap", str(split + 5),
                          str(FLUSH_EVERY), "3.0"], capture_output=True, timeout=120)
    assert run.returncode == -9, run.stderr
    assert sorted(p.name for p in bag.iterdir()) == ["bag_0.mcap", "bag_1.mcap"]
    assert main(["bag", "reindex", str(bag)]) == 0
    out = capsys.readouterr().out
    # the split-off file was still open for late messages: no footer, but flushed at the split
    assert f"bag_0.mcap: read to its last complete chunk, {split} messages" in out
    assert "bag_1.mcap: nothing readable" in out
    f = MessageFactory()
    expected = [(m.topic, m.t_ns, f.serialize(m.msg, m.msgtype)) for m in msgs[:split]]
    key = lambda m: (m[1], m[0])  # noqa: E731
    assert sorted(read_all(bag), key=key) == sorted(expected, key=key)
    assert sorted(p.name for p in bag.iterdir()) == ["bag_0.mcap", "bag_0.mcap.orig",
                                                     "bag_1.mcap.orig", "metadata.yaml"]


@pytest.mark.parametrize("where", ["seed 0", "seed 1", "seed 2", "seed 3", "in the header",
                                   "in the first chunk", "before the last byte"])
def test_a_cut_mcap_converts_to_a_prefix_of_its_episodes_or_fails_in_one_line(
        tmp_path, capsys, demo, where):
    msgs, bag, reference = demo
    (file,) = bag.glob("*.mcap")
    data = file.read_bytes()
    seed = int(where.split()[1]) if where.startswith("seed") else None
    offset = {"in the header": 20, "in the first chunk": 2000,
              "before the last byte": len(data) - 1}.get(where)
    if seed is not None:
        offset = int(np.random.default_rng(seed).integers(0, len(data)))
    cut = tmp_path / "bag"
    shutil.copytree(bag, cut)
    (cut / file.name).write_bytes(data[:offset])

    code, out = convert(cut, tmp_path / "ds", capsys)
    if code == 0:
        got = Dataset(tmp_path / "ds")
        same_episodes(got, reference, got.num_episodes)
        assert f"recovered {cut}: {file.name} has no footer" in out.out
    else:
        assert code == 2 and len(out.err.strip().splitlines()) == 1, out.err
        assert out.err.startswith(f"mberil convert: error: {cut}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"] + (["ds"] if code == 0 else [])
    if where in ("in the header", "in the first chunk"):
        assert code == 2
    elif where == "before the last byte":  # only the footer's end is lost
        assert code == 0 and got.num_episodes == EPISODES


def test_reindex_that_cannot_recover_leaves_the_bag_as_it_was(tmp_path, capsys, demo):
    _, bag, _ = demo
    (file,) = bag.glob("*.mcap")
    cut = tmp_path / "bag"
    shutil.copytree(bag, cut)
    (cut / file.name).write_bytes(file.read_bytes()[:2000])  # inside the first chunk
    (cut / "metadata.yaml").unlink()
    before = sha256_of(cut)
    assert main(["bag", "reindex", str(cut)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing to recover" in err and file.name in err
    assert sha256_of(cut) == before and [p.name for p in cut.iterdir()] == [file.name]


def test_reindex_of_a_complete_bag_changes_nothing(tmp_path, capsys, demo):
    _, bag, _ = demo
    before = sha256_of(bag)
    assert main(["bag", "reindex", str(bag)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert sha256_of(bag) == before
