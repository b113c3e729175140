"""The policy codec and runtime: one convention from training data to the executed command."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from algos_tester import TINY_NET, bc_run, tiny_dataset

from mberil_ros.algos.bc import BC, BCConfig
from mberil_ros.algos.codec import ACTION_REPRS, PolicyCodec, previous_commands
from mberil_ros.algos.data import DataConfig, OfflineData
from mberil_ros.errors import UserError
from mberil_ros.runtime import PolicyRuntime


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("rt"), expert=8, suboptimal=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, dataset):
    """A tiny Mamba BC policy trained for a few steps through the real runner."""
    out = tmp_path_factory.mktemp("runs")
    return bc_run(out, "r", dataset, 6, "algo.batch_size=2", "algo.data.val_fraction=0.25",
                  net=TINY_NET)


@pytest.mark.parametrize("repr_", ACTION_REPRS)
def test_codec_round_trips_and_matches_its_torch_form(dataset, repr_):
    data = OfflineData(dataset, DataConfig(action_repr=repr_, val_fraction=0.25))
    c = data.codec
    ep = data.dataset.episode(data.train_ids[0])
    prev = previous_commands(ep.observation, ep.action, c.qidx)
    a = c.action(ep.action, ep.observation, prev)
    assert np.abs(a).max() < 1.0  # inside the tanh range, margin included
    np.testing.assert_allclose(c.command(a, ep.observation, prev), ep.action, atol=2e-5)
    # the token of step t+1 from step t's tensors (model rollouts) equals the data's, where
    # the action is inside the fitted range (the expert's; the rollouts' actions always are)
    b = data.train
    m = (torch.arange(b.obs.shape[1])[None] < b.length[:, None]) & b.expert[:, None]
    nxt = c.torch_next_lead(b.obs, b.prev_act, b.act, b.next_obs)
    # float32: q, u and the next q (~1 rad, ~1e-7 rad round-off each) over a lead spread of
    # ~6e-3 rad: up to ~1e-4 in standardized units
    torch.testing.assert_close(nxt[m], b.next_prev_act[m], atol=5e-4, rtol=0)
    back = PolicyCodec.from_dict(json.loads(json.dumps(c.to_dict())))
    np.testing.assert_array_equal(back.action(ep.action, ep.observation, prev), a)


def test_the_action_range_is_the_experts_and_larger_steps_saturate(dataset):
    data = OfflineData(dataset, DataConfig(val_fraction=0.25))
    c, b = data.codec, data.train
    valid = torch.arange(b.obs.shape[1])[None] < b.length[:, None]
    expert, other = valid & b.expert[:, None], valid & ~b.expert[:, None]
    # the expert's training actions span the range less its 5 % margins, the others saturate
    assert b.act[expert].min(0).values.max() < -0.9 + 1e-3
    assert b.act[expert].max(0).values.min() > 0.9 - 1e-3
    assert b.act[expert].abs().max() <= 0.91 + 1e-3
    assert (b.act[other].abs() == 1.0).any() and b.act[other].abs().max() <= 1.0
    # fitted on every episode instead, the sub-optimal steps would widen the range
    wide = PolicyCodec.fit([(e.observation, e.action) for e in map(data.dataset.episode,
                                                                 data.train_ids)],
                           c.qidx, c.action_repr, 1e-4, 0.05)
    assert np.all(wide.y_high - wide.y_low >= c.y_high - c.y_low - 1e-7)
    assert np.any(wide.y_high - wide.y_low > 1.2 * (c.y_high - c.y_low))


def test_codec_statistics_come_from_the_training_split_only(dataset):
    data = OfflineData(dataset, DataConfig(val_fraction=0.25))
    train = np.concatenate([data.dataset.episode(i).observation for i in data.train_ids]
                           ).astype(np.float64)
    np.testing.assert_allclose(data.codec.obs_mean, train.mean(0), rtol=1e-5, atol=1e-6)
    everything = np.concatenate([data.dataset.episode(i).observation
                                 for i in range(data.dataset.num_episodes)]).astype(np.float64)
    assert not np.allclose(data.codec.obs_mean, everything.mean(0), rtol=1e-5, atol=1e-6)


def test_constant_features_keep_scale_one():
    obs = np.zeros((10, 3), np.float32)
    obs[:, 0] = np.linspace(0, 1, 10)  # a moving joint
    obs[:, 2] = 0.7  # a constant feature (e.g. an obstacle slot never used)
    act = obs[:, :1] + 0.01
    c = PolicyCodec.fit([(obs, act)], np.array([0]), "delta_position", 1e-4, 0.05)
    assert c.obs_scale[1] == 1.0 and c.obs_scale[2] == 1.0
    x = obs[0].copy()
    x[2] = 0.9  # unseen value of the constant feature: off by 0.2, not by 0.2 / eps
    assert abs(c.obs(x)[2] - 0.2) < 1e-6


@pytest.fixture(scope="module")
def size_128x4_checkpoint(tmp_path_factory, dataset):
    """Train-as-you-infer at a full network size (Mamba, 4 layers, d_model 128: twice the
    default's depth and width), with the previous-action token so the fed-back command
    matters, trained a few steps."""
    out = tmp_path_factory.mktemp("runs_128x4")
    return bc_run(out, "d", dataset, 3, "algo.batch_size=2", "algo.data.val_fraction=0.25",
                  "algo.network.policy_inputs=state_prev_action", "algo.network.d_model=128",
                  "algo.network.n_layers=4")


@pytest.mark.parametrize("which", ["tiny", "size_128x4"])
def test_runtime_streams_what_the_sequence_forward_computes(which, request, dataset):
    rt = PolicyRuntime.load(request.getfixturevalue(
        "checkpoint" if which == "tiny" else "size_128x4_checkpoint"))
    if which == "size_128x4":
        enc = rt.config["model"]["config"]["encoder"]
        assert (enc["d_model"], enc["n_layers"], enc["backbone"]) == (128, 4, "mamba")
    data = OfflineData(dataset, DataConfig(val_fraction=0.25))
    assert data.val_ids
    for i in data.val_ids:
        _stream_equals_forward(rt, data.dataset.episode(i))


def _stream_equals_forward(rt: PolicyRuntime, ep) -> None:
    """Whole held-out episodes, step by step through the runtime = the sequence forward."""
    rt.reset(ep.observation[0])
    cmds, sent = [], []
    for t in range(len(ep.observation)):
        sent.append(rt.prev_command.copy())
        cmds.append(rt.step(ep.observation[t]))
    # the same prefix through the whole-sequence forward, with the commands the runtime sent
    c = rt.codec
    obs = ep.observation
    prev = np.asarray(sent, np.float32)
    with torch.no_grad():
        mu, _ = rt.policy(torch.from_numpy(c.obs(obs))[None],
                          torch.from_numpy(c.lead(prev, obs))[None])
    want = c.command(torch.tanh(mu)[0].numpy(), obs, prev)
    want = np.clip(want, prev - rt.limits.velocity * rt.dt, prev + rt.limits.velocity * rt.dt)
    np.testing.assert_allclose(np.asarray(cmds), want, atol=2e-4)


def test_runtime_clamps_and_holds_on_bad_input(checkpoint, dataset):
    rt = PolicyRuntime.load(checkpoint)
    obs = OfflineData(dataset, DataConfig(val_fraction=0.25)).dataset.episode(0).observation[0]
    rt.reset(obs)
    q0 = rt.prev_command.copy()
    rt.codec.y_high = rt.codec.y_high + 100.0  # a policy gone wild: huge commands
    rt.codec.y_low = rt.codec.y_low + 99.0
    u = rt.step(obs)
    step = rt.limits.velocity * rt.dt
    assert np.all(np.abs(u - q0) <= step + 1e-9)
    assert np.all(u <= rt.limits.upper + 1e-9) and np.all(u >= rt.limits.lower - 1e-9)
    bad = obs.copy()
    bad[0] = np.nan
    held = rt.step(bad)
    np.testing.assert_array_equal(held, u)
    assert "non-finite observation" in rt.hold_reason and ".pos" in rt.hold_reason
    rt.stop()  # a new episode began elsewhere: nothing of the old one may be sent again
    assert rt.prev_command is None
    with pytest.raises(RuntimeError, match="before reset"):
        rt.step(obs)


def test_resume_keeps_the_history_only_where_the_arm_was_held(checkpoint, dataset):
    """After an e-stop: within the tolerance of the held command the recurrent state goes
    on (the next command is the one the uninterrupted history gives); beyond it, at
    tolerance 0 and before any episode, a fresh history as reset() makes it."""
    ep = OfflineData(dataset, DataConfig(val_fraction=0.25)).dataset.episode(0).observation
    twin, rt = PolicyRuntime.load(checkpoint), PolicyRuntime.load(checkpoint)
    assert rt.resume(ep[0], 0.02) is None and rt.prev_command is not None  # never started
    for r in (rt, twin):
        r.reset(ep[0])
        for obs in ep[1:6]:
            r.step(obs)
    held = rt.hold("e-stop")
    near = ep[6].copy()
    near[rt.codec.qidx] = held + 0.01
    moved = rt.resume(near, 0.02)
    assert moved == pytest.approx(0.01, abs=1e-6)
    np.testing.assert_array_equal(rt.step(near), twin.step(near))  # the same history

    def fresh(obs):
        r = PolicyRuntime.load(checkpoint)
        r.reset(obs)
        return r.step(obs)

    far = near.copy()
    far[rt.codec.qidx[0]] += 0.05
    assert rt.resume(far, 0.02) is None
    np.testing.assert_array_equal(rt.step(far), fresh(far))
    assert not np.array_equal(twin.step(far), fresh(far))  # the two can be told apart
    rt.hold("e-stop")
    assert rt.resume(np.asarray(ep[7]), 0.0) is None  # 0: always afresh


def test_runtime_refuses_mismatched_checkpoints(checkpoint, tmp_path):
    with pytest.raises(UserError, match="controls joints"):
        PolicyRuntime.load(checkpoint, joint_names=[f"LARM_JOINT{i}" for i in range(6)])
    rt = PolicyRuntime.load(checkpoint)
    names = list(rt.state_names)
    names[3] = "something.else"
    with pytest.raises(UserError, match="observation layout differs.*index 3"):
        PolicyRuntime.load(checkpoint, state_names=names)
    bad = tmp_path / "ck"
    shutil.copytree((checkpoint / "checkpoints" / "last").resolve(), bad)
    norm = json.loads((bad / "normalization.json").read_text())
    norm["observation"]["mean"] = norm["observation"]["mean"][:-1]
    (bad / "normalization.json").write_text(json.dumps(norm))
    with pytest.raises(UserError, match="normalization is for"):
        PolicyRuntime.load(bad)
    (bad / "normalization.json").write_text(json.dumps({"observation": {}}))
    with pytest.raises(UserError, match="normalization format"):
        PolicyRuntime.load(bad)


def test_bc_algorithm_trains_on_codec_actions(dataset):
    data = OfflineData(dataset, DataConfig(val_fraction=0.25, action_repr="delta_position"))
    algo = BC(BCConfig.from_dict({"network": {**TINY_NET, "backbone": "mlp"},
                                  "batch_size": 2}), data)
    first = algo.train_step(1)["loss/bc"]
    assert np.isfinite(first)
    _, cfg = algo.export_policy()
    assert cfg["normalization"]["action_repr"] == "delta_position"


@pytest.mark.parametrize("backbone", ["mlp", "mamba"])
def test_closed_loop_nll_feeds_the_policy_its_own_actions(dataset, backbone):
    data = OfflineData(dataset, DataConfig(val_fraction=0.25, max_seq_len=30))
    for inputs in ("state", "state_prev_action"):
        algo = BC(BCConfig.from_dict({"network": {**TINY_NET, "backbone": backbone,
                                                  "policy_inputs": inputs},
                                      "batch_size": 2}), data)
        for step in range(3):
            algo.train_step(step)
        out = algo.evaluate()
        assert np.isfinite(out["nll_pi_closed_loop"])
        if inputs == "state":  # nothing of the past actions is read: the two coincide
            assert out["nll_pi_closed_loop"] == pytest.approx(out["nll_pi"], rel=1e-4)
        else:  # its own sampled commands, not the expert's, build the tokens
            assert out["nll_pi_closed_loop"] != pytest.approx(out["nll_pi"], rel=1e-4)
        gen_state = algo.gen.get_state()
        algo.evaluate()
        assert torch.equal(algo.gen.get_state(), gen_state)  # resume stays bit-exact
