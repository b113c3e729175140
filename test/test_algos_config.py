"""Configuration and data-pipeline checks: explicit errors, normalization, split, batches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from algos_tester import TINY_NET, tiny_data, tiny_dataset

from mberil_ros.algos.bc import BC, BCConfig
from mberil_ros.algos.data import DataConfig, OfflineData
from mberil_ros.algos.offline_mberil import OfflineMBERIL, OfflineMBERILConfig
from mberil_ros.data.dataset import Dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("cfg"))


@pytest.fixture(scope="module")
def recorded(data):
    """The same data without distractor obstacles: batches hold exactly the recorded
    steps (distractors have their own tests in test_distractors.py)."""
    return OfflineData(data.dataset, dataclasses.replace(data.cfg, distractors=0.0))


def test_alpha_without_suboptimal_episodes_is_an_error_naming_field_and_dataset(tmp_path):
    data = OfflineData(tiny_dataset(tmp_path, expert=6, suboptimal=0),
                       DataConfig(val_fraction=0.25))
    cfg = OfflineMBERILConfig.from_dict({"network": {**TINY_NET, "backbone": "mlp"},
                                         "alpha": 0.3})
    with pytest.raises(ValueError, match=r"alpha.*sub-optimal.*ds") as err:
        OfflineMBERIL(cfg, data)
    assert "\n" not in str(err.value)
    # alpha = 0 (the naive loss) trains on expert data and rollouts alone
    cfg = OfflineMBERILConfig.from_dict({
        "network": {**TINY_NET, "backbone": "mlp"}, "alpha": 0.0, "bc_warmstart_steps": 1,
        "model_warmstart_steps": 1, "batch_size": 2, "rollout_batch": 2, "ensemble_size": 2})
    algo = OfflineMBERIL(cfg, data)
    algo.train_step(0)
    assert "loss/disc_pi" in algo.train_step(1)


@pytest.mark.parametrize("cls", [OfflineMBERILConfig, BCConfig])
def test_unknown_config_field_is_named(cls):
    with pytest.raises(ValueError, match="lerning_rate"):
        cls.from_dict({"lerning_rate": 1e-3})
    with pytest.raises(ValueError, match="d_modle"):
        cls.from_dict({"network": {"d_modle": 8}})


@pytest.mark.parametrize("field,value", [("horizon", 101), ("alpha", 1.0), ("baseline", "ema"),
                                         ("discriminator", "deep"), ("beta_pi", 0.0),
                                         ("ensemble_size", 0), ("logit_uniform_mix", 1.0),
                                         ("logit_uniform_mix", -0.1)])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"OfflineMBERILConfig.{field}"):
        OfflineMBERILConfig.from_dict({field: value})


def test_alpha_defaults_to_the_known_mixing_ratio(tmp_path):
    data = OfflineData(tiny_dataset(tmp_path, expert=4, suboptimal=4, expert_in_unlabeled=2))
    ds = data.dataset
    subs = [m for m in ds.episodes if m["label"] == "suboptimal"]
    want = sum(m["length"] for m in subs if m["demonstrator"] == "expert") / sum(
        m["length"] for m in subs)
    assert 0 < want < 1 and data.mixing_ratio == pytest.approx(want)
    algo = OfflineMBERIL(OfflineMBERILConfig.from_dict(
        {"network": {**TINY_NET, "backbone": "mlp"}}), data)
    assert algo.alpha == pytest.approx(want)


def test_split_is_by_episode_seeded_and_covers_both_labels(tmp_path):
    path = tiny_dataset(tmp_path)
    a = OfflineData(path, DataConfig(val_fraction=0.25, split_seed=3))
    b = OfflineData(Dataset(path), DataConfig(val_fraction=0.25, split_seed=3))
    c = OfflineData(path, DataConfig(val_fraction=0.25, split_seed=4))
    assert a.val_ids == b.val_ids and a.val_ids != c.val_ids
    assert not set(a.train_ids) & set(a.val_ids)
    assert sorted(a.train_ids + a.val_ids) == list(range(a.dataset.num_episodes))
    assert a.val.count("expert") == 2 and a.val.count("suboptimal") == 2


def test_batches_start_at_the_episode_start_with_a_mask(recorded):
    data = recorded
    g = torch.Generator().manual_seed(0)
    b = data.sample("all", 6, g)
    rows_first = data.codec.obs(np.stack([data.dataset.episode(i).observation[0]
                                               for i in data.train_ids]))
    for i in range(6):
        # every sequence's first step is some training episode's first observation
        assert np.abs(rows_first - b.obs[i, 0].numpy()).max(1).min() < 1e-6
        n = int(b.mask[i].sum())
        assert b.mask[i, :n].all() and not b.mask[i, n:].any()
    # u_{-1} = q_0: the first token says "the last command is where the arm is"
    zero_lead = torch.from_numpy(-data.codec.lead_mean / data.codec.lead_scale)
    torch.testing.assert_close(b.prev_act[:, 0], zero_lead.expand_as(b.prev_act[:, 0]))
    inner = b.mask[:, 1:]
    torch.testing.assert_close(b.prev_act[:, 1:][inner], b.next_prev_act[:, :-1][inner])
    assert torch.equal(b.obs[:, 1:][b.mask[:, 1:]], b.next_obs[:, :-1][b.mask[:, 1:]])
    again = data.sample("all", 6, torch.Generator().manual_seed(0))
    assert torch.equal(again.obs, b.obs)  # the seeded generator decides everything
    e = data.sample("expert", 8, g)
    assert e.expert.all()


def test_cropped_sequences_are_episode_suffixes_with_their_own_steps(recorded):
    """history_crop: a cropped row is its episode from a later step on (every array shifted
    together, the mask as long as what is left); crop 0 leaves sample() as it was."""
    data = recorded
    train = data.train
    b = data.sample("expert", 64, torch.Generator().manual_seed(1), crop=1.0)
    starts_seen = 0
    for i in range(64):
        n = int(b.mask[i].sum())
        assert b.mask[i, :n].all() and not b.mask[i, n:].any()
        # find the episode and step the row begins at
        r, s = next((int(r), s) for r in train.index["expert"]
                    for s in range(int(train.length[r]))
                    if torch.equal(train.obs[r, s], b.obs[i, 0]))
        assert n == int(train.length[r]) - s
        for key in ("obs", "act", "prev_act", "next_obs", "next_prev_act"):
            assert torch.equal(getattr(b, key)[i, :n], getattr(train, key)[r, s:s + n]), key
        starts_seen += s > 0
    assert starts_seen > 48  # nearly every row starts later (s = 0 has chance 1 / length)
    plain = data.sample("expert", 8, torch.Generator().manual_seed(2))
    same = data.sample("expert", 8, torch.Generator().manual_seed(2), crop=0.0)
    assert torch.equal(plain.obs, same.obs) and torch.equal(plain.mask, same.mask)
    with pytest.raises(ValueError, match="history_crop"):
        DataConfig(history_crop=1.5)


def test_step_batches_draw_valid_steps_of_the_label_uniformly(recorded):
    data = recorded
    g = torch.Generator().manual_seed(0)
    b = data.sample_steps("expert", 4000, g)
    assert b.obs.shape == (4000, 1, data.obs_dim) and b.mask.all() and b.expert.all()
    train = data.train
    rows = train.index["expert"]
    valid = {(int(r), t) for r in rows for t in range(int(train.length[r]))}
    # every drawn step is a real (non-padding) step of an expert episode, with its own action
    flat = {}
    for r, t in valid:
        flat.setdefault(train.obs[r, t].numpy().tobytes(), []).append((r, t))
    hits = set()
    for i in range(len(b.obs)):
        (r, t), *_ = flat[b.obs[i, 0].numpy().tobytes()]
        assert torch.equal(b.act[i, 0], train.act[r, t])
        assert torch.equal(b.next_obs[i, 0], train.next_obs[r, t])
        hits.add((r, t))
    assert len(hits) > 0.8 * len(valid)  # uniform over steps, not over episodes
    assert data.sample_steps("suboptimal", 16, g).expert.logical_not().all()


def test_offline_mberil_starts_from_a_bc_checkpoint_and_refuses_another_normalization(tmp_path):
    from mberil_ros.algos.runner import TrainingRun
    from mberil_ros.algos.train_config import load_train_config
    from mberil_ros.errors import UserError

    path = tiny_dataset(tmp_path, expert=6, suboptimal=4)
    net = {**TINY_NET, "backbone": "mlp"}
    cfg = load_train_config(None, [
        "algorithm=bc", f"dataset={path}", f"output_dir={tmp_path}", "name=bc", "steps=3",
        "eval_every=3", "checkpoint_every=3", "progress=false", "algo.data.val_fraction=0.25",
        *[f"algo.network.{k}={v}" for k, v in net.items()]])
    TrainingRun(cfg, tmp_path / "bc").run()
    data = OfflineData(path, DataConfig(val_fraction=0.25))
    algo = OfflineMBERIL(OfflineMBERILConfig.from_dict(
        {"network": net, "data": {"val_fraction": 0.25}, "init_policy": str(tmp_path / "bc"),
         "model_warmstart_steps": 2}), data)
    from mberil_ros.algos import checkpoint as ckpt
    saved = ckpt.load_weights(ckpt.resolve(tmp_path / "bc"))
    for k, v in algo.policy.state_dict().items():
        assert torch.equal(v, saved[f"policy.{k}"]), k
    assert algo.bc_done == algo.cfg.bc_warmstart_steps and not algo.warm
    algo.train_step(0)
    algo.train_step(1)
    assert algo.warm  # only the model's warm start was left
    # with no model warm start at all, the baseline policy b still starts from the checkpoint
    warm = OfflineMBERIL(OfflineMBERILConfig.from_dict(
        {"network": net, "data": {"val_fraction": 0.25}, "init_policy": str(tmp_path / "bc"),
         "model_warmstart_steps": 0, "baseline": "mle"}), data)
    assert warm.warm
    for k, v in warm.policy_base.state_dict().items():
        assert torch.equal(v, saved[f"policy.{k}"]), k
    other = OfflineData(path, DataConfig(val_fraction=0.25, action_repr="absolute"))
    with pytest.raises(UserError, match="init_policy.*another normalization"):
        OfflineMBERIL(OfflineMBERILConfig.from_dict(
            {"network": net, "data": {"val_fraction": 0.25, "action_repr": "absolute"},
             "init_policy": str(tmp_path / "bc")}), other)


def test_policy_ignore_hides_features_from_the_policy_only(data):
    net = {**TINY_NET, "backbone": "mlp", "policy_ignore": ["*.vel"]}
    algo = OfflineMBERIL(OfflineMBERILConfig.from_dict({"network": net}), data)
    vel = [i for i, n in enumerate(data.state_names) if n.endswith(".vel")]
    assert len(vel) == 6 and algo.policy.encoder.cfg.ignore_dims == vel
    assert algo.model.encoder.cfg.ignore_dims is None  # the model still sees velocities
    b = data.sample("expert", 2, torch.Generator().manual_seed(0))
    changed = b.obs.clone()
    changed[..., vel] += 5.0
    with torch.no_grad():
        torch.testing.assert_close(algo.policy(b.obs, b.prev_act)[0],
                                   algo.policy(changed, b.prev_act)[0])
        assert not torch.allclose(algo.model(b.obs, b.prev_act, b.act)[0],
                                  algo.model(changed, b.prev_act, b.act)[0])
    with pytest.raises(ValueError, match="policy_ignore.*'\\*.velocity' matches no"):
        BC(BCConfig.from_dict({"network": {**net, "policy_ignore": ["*.velocity"]}}), data)


def test_cosine_lr_schedule_is_a_function_of_the_step(data):
    from mberil_ros.algos.bc import cosine_lr

    assert cosine_lr(1e-3, 0, 100) == pytest.approx(1e-3)
    assert cosine_lr(1e-3, 50, 100) == pytest.approx(5e-4)
    assert cosine_lr(1e-3, 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(1e-3, 500, 100) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(1e-3, 500, 0) == 1e-3  # off
    algo = BC(BCConfig.from_dict({"network": {**TINY_NET, "backbone": "mlp"},
                                  "lr_decay_steps": 10, "step_batch_size": 8}), data)
    algo.train_step(5)
    assert algo.optim.param_groups[0]["lr"] == pytest.approx(5e-4)
