"""Dataset reader round trip, both-arms/trajectory layouts, header stamps, fast paths."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from test_data_convert import _check_against_published

from mberil_ros.cli import main
from mberil_ros.data.config import LEFT, RIGHT
from mberil_ros.data.dataset import Dataset
from mberil_ros.data.fastdecode import DecodeError, JointStateDecoder
from mberil_ros.data.mcapfast import fast_messages
from mberil_ros.data.synthetic import (
    NEXTAGE_JOINTS,
    MessageFactory,
    demo_messages,
    demo_obstacles,
    write_bag,
)
from mberil_ros.sim import spaces
from mberil_ros.sim.observation import obstacle_features


def test_round_trip_and_stats(tmp_path):
    msgs = list(demo_messages(MessageFactory(), episodes=3, jitter_s=0.002))
    bag = write_bag(tmp_path / "bag", msgs, "sqlite3")
    assert main(["convert", str(bag), "-o", str(tmp_path / "ds"), "--no-progress"]) == 0
    ds = Dataset(tmp_path / "ds")
    assert ds.num_episodes == 3 and ds.fps == 50
    frames = ds.frames()
    assert len(frames["action"]) == ds.num_frames == sum(e["length"] for e in ds.episodes)
    assert list(frames["index"]) == list(range(ds.num_frames))
    for name in ("observation.state", "action", "next.observation.state"):
        st = ds.stats_arrays(name)
        x = frames[name].astype(np.float64)
        np.testing.assert_allclose(st["mean"], x.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(st["std"], x.std(0), rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(st["min"], x.min(0).astype(np.float32))
        np.testing.assert_array_equal(st["max"], x.max(0).astype(np.float32))
    episodes = list(ds.iter_episodes())
    assert [e.index for e in episodes] == [0, 1, 2]
    assert [e.index for e in ds.iter_episodes(label="expert")] == [0, 2]
    for ep in episodes:
        assert (ep.meta["dataset_to_index"] - ep.meta["dataset_from_index"]) == len(ep)
        assert np.all(np.diff(ep.timestamp) > 0)
    assert ds.feature_names("action") == [f"{j}.target" for j in RIGHT]


def test_both_arms_with_trajectory_action_and_header_stamps(tmp_path):
    cfg = tmp_path / "both.yaml"
    cfg.write_text("arm: both\naction_source: trajectory\ntimestamps: header\n")
    msgs = list(demo_messages(MessageFactory(), left_goal=True, action="trajectory",
                              shuffle_joints=True, obstacles=3))
    bag = write_bag(tmp_path / "bag", msgs)
    out = tmp_path / "ds"
    assert main(["convert", str(bag), "-o", str(out), "--config", str(cfg),
                 "--no-progress"]) == 0
    ds = Dataset(out)
    both = spaces.observation_layout("both")
    assert ds.frames()["observation.state"].shape[1] == both.obs_dim
    assert ds.frames()["action"].shape[1] == 12
    # no jitter: header stamps equal receive times, so the receive-time truth applies
    _check_against_published(ds, msgs, joints=[*RIGHT, *LEFT], action_topic="trajectory")
    ep = ds.episode(1)
    np.testing.assert_allclose(ep.observation[0, both.goal], [0.31, -0.2, 0.05, 0.3, 0.2, 0.1],
                               rtol=1e-6)
    slots = ep.observation[0, both.obstacles].reshape(spaces.MAX_OBSTACLES, -1)
    np.testing.assert_allclose(slots, obstacle_features(demo_obstacles(1, 3)).reshape(
        spaces.MAX_OBSTACLES, -1), rtol=1e-6)
    assert slots[:, spaces.OB_PRESENT].tolist() == [1, 1, 1]


def test_fast_mcap_loop_matches_rosbags(tmp_path):
    bag = write_bag(tmp_path / "bag", demo_messages(MessageFactory(), jitter_s=0.004))
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic != "/task/goal"]
        fast = fast_messages(reader, conns)
        assert fast is not None
        got = [(c.topic, t, bytes(r)) for c, t, r in fast]
        want = [(c.topic, t, bytes(r)) for c, t, r in reader.messages(connections=conns)]
    assert got == want and len(got) > 800


def test_joint_state_fast_decode_matches_rosbags_and_falls_back():
    rng = np.random.default_rng(0)
    for ros1 in (False, True):
        f = MessageFactory(ros1=ros1)
        typ = "sensor_msgs/msg/JointState"
        raws, truth = [], []
        for i in range(60):
            order = rng.permutation(15) if i % 3 else np.arange(15)
            names = [NEXTAGE_JOINTS[k] for k in order]
            pos, vel = rng.normal(size=15), rng.normal(size=15)
            # frame_id lengths shift the alignment of everything after the header
            raws.append(f.serialize(f.joint_state(i, names, pos, vel, "x" * (i % 9)), typ))
            idx = [names.index(j) for j in RIGHT]
            truth.append(np.concatenate([pos[idx], vel[idx]]))
        store = f.store
        deserialize = partial(store.deserialize_ros1 if ros1 else store.deserialize_cdr,
                              typename=typ)
        decoder = JointStateDecoder(RIGHT, deserialize, ros1)
        pos, vel = decoder.decode(raws)
        np.testing.assert_array_equal(np.concatenate([pos, vel], 1), np.array(truth))
        assert decoder.fast > 40
        # velocity missing: the validated layout does not fit, rosbags decodes and reports it
        bad = f.serialize(f.joint_state(0, NEXTAGE_JOINTS, np.zeros(15), np.zeros(0)), typ)
        with pytest.raises(DecodeError, match="velocity has 0 values for 15 names") as info:
            decoder.decode([raws[0], bad])
        assert info.value.index == 1
