"""Hand features (models/hand_features.py): the network's forward kinematics must be the
simulator's, survive a checkpoint round trip, and reach the policy through the runtime."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from algos_tester import TINY_NET, bc_run, tiny_dataset

from mberil_ros.algos.data import DataConfig, OfflineData
from mberil_ros.models.config import EncoderConfig
from mberil_ros.models.encoder import SequenceEncoder
from mberil_ros.models.hand_features import PATH_FAR, PATH_NEAR
from mberil_ros.runtime import PolicyRuntime
from mberil_ros.sim import spaces
from mberil_ros.sim.kinematics import ArmKinematics
from mberil_ros.sim.scene import Obstacle, point_obstacle_distance, segment_obstacle_distance
from mberil_ros.sim.task import ReachingTask


def _features_for(arm: str, n: int = 40, mode: str = "hand"):
    """A HandFeatures configured on raw observations of ``arm`` from the simulator."""
    lay = spaces.observation_layout(arm)
    task = ReachingTask("train", arm, seed=3)
    rng = np.random.default_rng(0)
    obs = []
    for k in range(n):
        o = task.reset(seed=k)
        o[lay.qpos] += rng.uniform(-0.4, 0.4, lay.qpos.stop - lay.qpos.start)
        obs.append(o)
    obs = np.asarray(obs, np.float32)
    enc = SequenceEncoder(EncoderConfig(obs_dim=lay.obs_dim, act_dim=lay.act_dim,
                                        backbone="mlp", features=mode, d_model=8,
                                        mlp_hidden=8))
    mean, scale = obs.mean(0), np.where(obs.std(0) > 1e-4, obs.std(0), 1.0)
    enc.features.configure(lay.state_names, lay.joints, mean, scale, obs)
    x_n = torch.from_numpy((obs - mean) / scale)
    return enc.features, obs, x_n, lay


@pytest.mark.parametrize("arm", ["right", "left", "both"])
def test_forward_kinematics_matches_the_simulator(arm):
    feats, obs, x_n, lay = _features_for(arm)
    hands = feats.hand_positions(x_n).numpy()
    kin = ArmKinematics()
    for o, got in zip(obs, hands, strict=True):
        q = o[lay.qpos]
        kin.set_configuration(dict(zip(lay.joints, q, strict=True)))
        want = np.stack([kin.hand(side) for side in lay.hands])
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_features_are_hand_goal_and_obstacle_offsets_zero_for_empty_slots():
    feats, obs, x_n, lay = _features_for("right")
    raw = feats(x_n) * feats.feat_scale + feats.feat_mean
    hand = feats.hand_positions(x_n)[:, 0]
    torch.testing.assert_close(raw[:, :3], hand)
    torch.testing.assert_close(raw[:, 3:6], torch.from_numpy(obs[:, lay.goal]) - hand,
                               atol=1e-5, rtol=0)
    slots = obs[:, lay.obstacles].reshape(len(obs), spaces.MAX_OBSTACLES, -1)
    present = slots[:, :, spaces.OB_PRESENT] > 0.5
    assert present.any() and (~present).any()  # both cases are exercised
    off = raw[:, 6:].reshape(len(obs), spaces.MAX_OBSTACLES, 3)
    want = torch.from_numpy(slots[:, :, :3]) - hand[:, None]
    torch.testing.assert_close(off[torch.from_numpy(present)], want[torch.from_numpy(present)],
                               atol=1e-5, rtol=0)
    assert off[torch.from_numpy(~present)].abs().max() < 1e-5


def test_surface_features_are_corner_and_nearest_point_offsets_matching_the_sim():
    feats, obs, x_n, lay = _features_for("right", mode="hand_surface")
    raw = (feats(x_n) * feats.feat_scale + feats.feat_mean).numpy()
    hands = feats.hand_positions(x_n)[:, 0].numpy()
    task = ReachingTask("train", "right", seed=3)
    checked = 0
    for k, (row, hand) in enumerate(zip(raw, hands, strict=True)):
        task.reset(seed=k)  # the same layouts _features_for observed
        slots = row[6:].reshape(spaces.MAX_OBSTACLES, 9)
        for slot, ob in enumerate(task.episode.obstacles):
            c, h = np.asarray(ob.position), ob.half_extents
            np.testing.assert_allclose(slots[slot, :3], c - h - hand, atol=1e-5)
            np.testing.assert_allclose(slots[slot, 3:6], c + h - hand, atol=1e-5)
            gap = float(np.linalg.norm(slots[slot, 6:]))
            if ob.type == "box":  # the nearest-point offset's length is the sim's distance
                want = point_obstacle_distance(hand, ob)
                assert gap == pytest.approx(max(want, 0.0), abs=1e-5)
            checked += 1
        assert np.abs(slots[len(task.episode.obstacles):]).max(initial=0.0) < 1e-5
    assert checked > 10


def test_path_features_match_the_sim_and_gate_obstacles_off_the_hands_way():
    feats, obs, x_n, lay = _features_for("right", n=80, mode="hand_path")
    raw = (feats(x_n) * feats.feat_scale + feats.feat_mean).numpy()
    hands = feats.hand_positions(x_n)[:, 0].numpy()
    task = ReachingTask("train", "right", seed=3)
    gates = []
    for k, (row, hand) in enumerate(zip(raw, hands, strict=True)):
        task.reset(seed=k)  # the same layouts _features_for observed
        goal = np.asarray(task.episode.targets["right"])
        slots = row[6:].reshape(spaces.MAX_OBSTACLES, 6)
        for slot, ob in enumerate(task.episode.obstacles):
            box = Obstacle.box(ob.position, ob.size)  # a sphere reads as its bounding box
            path = max(segment_obstacle_distance(hand, goal, box, n=2000), 0.0)
            gate = float(np.clip((PATH_FAR - path) / (PATH_FAR - PATH_NEAR), 0.0, 1.0))
            assert slots[slot, 5] == pytest.approx(gate, abs=0.05)  # sampled segment
            g = slots[slot, 5]
            assert slots[slot, 4] == pytest.approx(g * path, abs=3e-3)
            assert slots[slot, 3] == pytest.approx(g * (box.top - hand[2]), abs=1e-5)
            gap = float(np.linalg.norm(slots[slot, :3]))
            assert gap == pytest.approx(g * max(point_obstacle_distance(hand, box), 0.0),
                                        abs=1e-5)
            gates.append(g)
        assert np.abs(slots[len(task.episode.obstacles):]).max(initial=0.0) < 1e-5
    gates = np.asarray(gates)
    # both kinds are exercised: obstacles on the way (gate 1) and off it (gate 0)
    assert (gates > 0.999).sum() > 5 and (gates < 1e-6).sum() > 5


def test_an_obstacle_off_the_way_reads_as_an_empty_slot():
    """Moving an obstacle around far from the hand's way to the goal changes nothing the
    network reads from the features (the raw slot is hidden by policy_ignore)."""
    feats, obs, x_n, lay = _features_for("right", mode="hand_path")

    def normalized(o: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((o - feats.obs_mean.numpy()) / feats.obs_scale.numpy())

    o = obs[0].copy()
    slots = o[lay.obstacles].reshape(spaces.MAX_OBSTACLES, -1)
    slots[:] = 0.0
    empty = feats(normalized(o))
    hand, goal = feats.hand_positions(normalized(o))[0].numpy(), o[lay.goal]
    away = np.cross(goal - hand, [0.0, 0.0, 1.0])
    away /= np.linalg.norm(away)
    read = []
    for dist in (PATH_FAR + 0.05, PATH_FAR + 0.1, PATH_NEAR - 0.05):  # of the centre
        slots[0, :3] = 0.5 * (hand + goal) + dist * away
        slots[0, 3:6] = 0.02
        slots[0, spaces.OB_PRESENT] = 1.0
        o[lay.obstacles] = slots.ravel()
        read.append(feats(normalized(o)))
    torch.testing.assert_close(read[0], empty)
    torch.testing.assert_close(read[1], empty)
    assert not torch.allclose(read[2], empty)  # on the way: it is seen


def test_a_checkpoint_carries_its_kinematics_and_the_runtime_uses_them(tmp_path):
    dataset = tiny_dataset(tmp_path, expert=6, suboptimal=0)
    bc_run(tmp_path, "r", dataset, 4, "algo.data.val_fraction=0.25", "algo.network.backbone=mlp",
           "algo.network.features=hand", net=TINY_NET)
    rt = PolicyRuntime.load(tmp_path / "r")
    feats = rt.policy.encoder.features
    assert feats is not None and feats.q_index.tolist() == [list(range(6))]
    assert float(feats.feat_scale.min()) > 0 and float(feats.joint_axis.abs().sum()) > 0
    # the loaded buffers are the trained ones, not the constructor's placeholders
    data = OfflineData(dataset, DataConfig(val_fraction=0.25))
    ep = data.dataset.episode(0)
    x_n = torch.from_numpy(rt.codec.obs(ep.observation))
    kin = ArmKinematics()
    kin.set_configuration(dict(zip(spaces.RARM_JOINTS, ep.observation[5, :6], strict=True)))
    np.testing.assert_allclose(feats.hand_positions(x_n[5:6])[0, 0].numpy(), kin.hand("right"),
                               atol=1e-5)
    rt.reset(ep.observation[0])
    assert np.all(np.isfinite(rt.step(ep.observation[0])))
