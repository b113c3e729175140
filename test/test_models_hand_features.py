"""Hand features (models/hand_features.py): the network's forward kinematics must be the
simulator's, survive a checkpoint round trip, and reach the policy through the runtime."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from algos_tester import TINY_NET, bc_run, tiny_dataset, warm_start_from

from mberil_ros.algos.common import NetworkConfig
from mberil_ros.algos.data import DataConfig, OfflineData
from mberil_ros.errors import UserError
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
    enc, x_n = _configured(lay, obs, mode)
    return enc.features, obs, x_n, lay


def _configured(lay, obs: np.ndarray, mode: str = "hand", gate: bool = False):
    """A tiny encoder whose HandFeatures are configured on ``obs`` (raw), and ``obs``
    normalized as it reads them."""
    enc = SequenceEncoder(EncoderConfig(obs_dim=lay.obs_dim, act_dim=lay.act_dim,
                                        backbone="mlp", features=mode, obstacle_gate=gate,
                                        d_model=8, mlp_hidden=8))
    mean, scale = obs.mean(0), np.where(obs.std(0) > 1e-4, obs.std(0), 1.0)
    enc.features.configure(lay.state_names, lay.joints, mean, scale, obs)
    return enc, torch.from_numpy((obs - mean) / scale)


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


def _expert_observations(seeds: range, stride: int = 5) -> tuple[np.ndarray, list[int]]:
    """Every ``stride``-th observation of the scripted expert's episodes on ``seeds``."""
    from mberil_ros.sim.demonstrators import ScriptedExpert

    task, expert = ReachingTask("train"), ScriptedExpert()
    obs, seed_of = [], []
    for seed in seeds:
        o = task.reset(seed=seed)
        expert.reset(task.episode, seed=seed)
        for t in range(800):
            if t % stride == 0:
                obs.append(o.copy())
                seed_of.append(seed)
            o, _, done, _ = task.step(expert.act(o))
            if done:
                break
    return np.asarray(obs, np.float32), seed_of


def _gated_features(obs: np.ndarray):
    lay = spaces.observation_layout("right")
    return (*_configured(lay, obs, gate=True), lay)


def test_the_slot_gate_shows_every_obstacle_the_expert_reacts_to():
    """Along the expert's own episodes, every obstacle it plans around (within its 7.5 cm
    line-of-sight clearance of the hand-to-goal segment) or is pushed by (within 5 cm of an
    arm link, MuJoCo's exact distance) is fully visible; others fade out."""
    obs, seed_of = _expert_observations(range(8))
    enc, x_n, lay = _gated_features(obs)
    gate = enc.features.slot_gate(x_n).numpy()
    task, kin = ReachingTask("train"), ArmKinematics()
    reacts, hidden = 0, 0
    for o, seed, g in zip(obs, seed_of, gate, strict=True):
        task.reset(seed=seed)
        kin.set_configuration(dict(zip(lay.joints, o[lay.qpos], strict=True)))
        hand, goal = kin.hand("right"), np.asarray(task.episode.targets["right"])
        for slot, ob in enumerate(task.episode.obstacles):
            kin.set_obstacles([ob])
            box = Obstacle.box(ob.position, ob.size)
            if (segment_obstacle_distance(hand, goal, box, n=200) < 0.075
                    or list(kin.proximity("right", 0.05, 0.0))):
                reacts += 1
                assert g[slot] > 0.999, (seed, slot)
            hidden += g[slot] < 1e-6
        assert np.all(g[len(task.episode.obstacles):] == 0.0)  # empty slots stay empty
    assert reacts > 50 and hidden > 5  # both cases are exercised


def test_a_gated_slot_reads_as_empty_off_the_way_and_unchanged_on_it():
    obs, _ = _expert_observations(range(3))
    enc, x_n, lay = _gated_features(obs)
    feats = enc.features
    gate = feats.slot_gate(x_n)
    gated = feats.gated(x_n)
    idx = feats.slot_index
    raw = gated * feats.obs_scale + feats.obs_mean
    raw_in = x_n * feats.obs_scale + feats.obs_mean
    present = raw_in[:, idx[:, -1]] > 0.5
    assert (present & (gate == 0.0)).any() and (gate == 1.0).any()  # both cases exercised
    for slot in range(spaces.MAX_OBSTACLES):
        off, on = gate[:, slot] == 0.0, gate[:, slot] == 1.0
        assert float(raw[off][:, idx[slot]].abs().sum()) < 1e-5  # an empty slot: all 0
        torch.testing.assert_close(raw[on][:, idx[slot]], raw_in[on][:, idx[slot]])
    rest = torch.ones(lay.obs_dim, dtype=torch.bool)
    rest[idx.flatten()] = False
    torch.testing.assert_close(gated[:, rest], x_n[:, rest])  # joints and goal untouched
    # an obstacle moved around far from the hand's way and the arm changes nothing read
    o = obs[0].copy()
    slots = o[lay.obstacles].reshape(spaces.MAX_OBSTACLES, -1)
    slots[:] = 0.0
    o[lay.obstacles] = slots.ravel()

    def inputs(v: np.ndarray) -> torch.Tensor:
        return enc._state_inputs((torch.from_numpy(v) - feats.obs_mean) / feats.obs_scale)

    empty = inputs(o)
    for xy in ((0.55, 0.35), (0.6, 0.2), (-0.3, -0.5)):  # in front, on the left, behind
        slots[0, :3] = (*xy, -0.05)
        slots[0, 3:6] = 0.03
        slots[0, spaces.OB_PRESENT] = 1.0
        o[lay.obstacles] = slots.ravel()
        torch.testing.assert_close(inputs(o), empty)


def test_the_obstacle_gate_needs_hand_features():
    with pytest.raises(ValueError, match="obstacle_gate needs the hand's kinematics"):
        EncoderConfig(features="none", obstacle_gate=True)
    with pytest.raises(ValueError, match=r"policy_obstacle_gate \(on by default\) needs the "
                                         r"hand's kinematics.*or policy_obstacle_gate to false"):
        NetworkConfig(features="none")
    assert not NetworkConfig(features="none", policy_obstacle_gate=False).policy_obstacle_gate
    with pytest.raises(ValueError, match="policy_obstacle_gate must be true or false"):
        NetworkConfig(policy_obstacle_gate="yes")


def test_a_warm_start_trained_without_the_gate_is_refused_with_the_setting_to_change(tmp_path):
    """The gate is on by default since 2026-12-01; a BC checkpoint from before (no slot
    indices) names the override that makes it usable, and runs as it was trained."""
    assert NetworkConfig().policy_obstacle_gate
    dataset = tiny_dataset(tmp_path, expert=6, suboptimal=0)
    old = bc_run(tmp_path, "old", dataset, 2, "algo.data.val_fraction=0.25",
                 "algo.network.policy_obstacle_gate=false", net=TINY_NET)
    assert not PolicyRuntime.load(old).policy.encoder.cfg.obstacle_gate
    with pytest.raises(UserError, match="without the obstacle gate: set "
                                        "algo.network.policy_obstacle_gate=false"):
        warm_start_from(old, dataset)


def test_a_gated_warm_start_in_an_ungated_config_is_refused_with_the_setting(tmp_path):
    dataset = tiny_dataset(tmp_path, expert=6, suboptimal=0)
    gated = bc_run(tmp_path, "gated", dataset, 2, "algo.data.val_fraction=0.25",
                   "algo.network.policy_obstacle_gate=true", net=TINY_NET)
    with pytest.raises(UserError, match="with the obstacle gate: set "
                                        "algo.network.policy_obstacle_gate=true"):
        warm_start_from(gated, dataset, policy_obstacle_gate=False)


def test_a_gated_policy_round_trips_through_a_checkpoint(tmp_path):
    """Only the policy is gated; the runtime rebuilds the gate and its slot indices from the
    checkpoint and acts as the trained network does."""
    dataset = tiny_dataset(tmp_path, expert=6, suboptimal=0)
    bc_run(tmp_path, "r", dataset, 4, "algo.data.val_fraction=0.25",
           "algo.network.policy_obstacle_gate=true", net=TINY_NET)
    rt = PolicyRuntime.load(tmp_path / "r")
    feats = rt.policy.encoder.features
    assert rt.policy.encoder.cfg.obstacle_gate and feats.gate
    lay = spaces.observation_layout("right")
    want = [[lay.state_names.index(f"obstacle{k}.{f}") for f in spaces.OBSTACLE_FIELDS]
            for k in range(spaces.MAX_OBSTACLES)]
    assert feats.slot_index.tolist() == want
    ep = OfflineData(dataset, DataConfig(val_fraction=0.25)).dataset.episode(0)
    x_n = torch.from_numpy(rt.codec.obs(ep.observation))
    with torch.no_grad():
        full = rt.policy.encoder(x_n[None])[0]
    state = rt.policy.encoder.init_state(1)
    with torch.no_grad():
        steps = torch.cat([rt.policy.encoder.step(x_n[t:t + 1], None, state)
                           for t in range(len(x_n))])
    torch.testing.assert_close(steps, full, atol=1e-4, rtol=1e-4)


def test_the_slot_gate_covers_both_arms():
    """With both arms, an obstacle next to either hand is seen and one far from both is not."""
    lay = spaces.observation_layout("both")
    task = ReachingTask("train", "both", seed=3)
    obs = np.asarray([task.reset(seed=k) for k in range(20)], np.float32)
    enc, _ = _configured(lay, obs, gate=True)
    feats = enc.features

    def normalized(o: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(o) - feats.obs_mean) / feats.obs_scale

    o = obs[0].copy()
    hands = feats.hand_positions(normalized(o)).numpy()
    slots = np.zeros((spaces.MAX_OBSTACLES, len(spaces.OBSTACLE_FIELDS)), np.float32)
    for k, centre in enumerate([hands[0] + (0, 0, -0.08), hands[1] + (0, 0, -0.08),
                                (0.9, 0.0, -0.05)]):  # below each hand, and far in front
        slots[k, :3], slots[k, 3:6], slots[k, spaces.OB_PRESENT] = centre, 0.02, 1.0
    o[lay.obstacles] = slots.ravel()
    gate = feats.slot_gate(normalized(o)).numpy()
    np.testing.assert_array_equal(gate, [1.0, 1.0, 0.0])
