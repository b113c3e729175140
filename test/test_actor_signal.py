"""actor_signal: the direction and reach of the actor's push, against known scores."""

from __future__ import annotations

import math

import pytest
import torch
from algos_tester import TINY_NET, tiny_data, tiny_mberil_config

from mberil_ros.algos.actor_signal import actor_signal
from mberil_ros.algos.bc import build_policy
from mberil_ros.algos.offline_mberil import OfflineMBERIL


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("signal"))


@pytest.fixture(scope="module")
def policy(data):
    from mberil_ros.algos.common import NetworkConfig

    torch.manual_seed(0)
    return build_policy(NetworkConfig(**TINY_NET, backbone="mlp"), data)


def _towards_expert(b, u):  # gradient 2 (a_E - u): straight at the expert's action
    return -((u - b.act) ** 2).sum(-1)


def test_a_score_that_points_at_the_expert_aligns_and_its_opposite_does_not(data, policy):
    batches = data.batches("expert", 8)
    good = actor_signal(policy, _towards_expert, batches, "cpu", eta=1.0)
    bad = actor_signal(policy, lambda b, u: -_towards_expert(b, u), batches, "cpu", eta=1.0)
    assert good["actor/q_align"] == pytest.approx(1.0, abs=1e-5)
    assert good["actor/q_align_top"] == pytest.approx(1.0, abs=1e-5)
    assert bad["actor/q_align"] == pytest.approx(-1.0, abs=1e-5)
    assert "actor/q_shift" not in good  # no baseline (uniform b): nothing pins the mean
    # an action-independent score along one fixed direction is unrelated to the corrections
    fixed = actor_signal(policy, lambda b, u: u[..., 0], batches, "cpu", eta=1.0)
    assert abs(fixed["actor/q_align"]) < 0.9


def test_the_top_steps_are_those_furthest_from_the_expert(data, policy):
    batches = data.batches("expert", 8)
    gaps = []
    with torch.no_grad():
        for b in batches:
            mu, _ = policy(b.obs, b.prev_act)
            gaps.append((b.act - torch.tanh(mu))[b.mask].norm(dim=-1))
    gaps = torch.cat(gaps).sort(descending=True).values
    k = max(1, round(0.1 * gaps.numel()))
    out = actor_signal(policy, _towards_expert, batches, "cpu", eta=1.0)
    assert out["actor/gap_top"] == pytest.approx(float(gaps[:k].mean()), rel=1e-5)


def test_the_shift_is_eta_sigma_b_squared_times_the_push(data, policy):
    """One joint, one step: the balance of -(beta/eta) ln b and -beta score in the pre-tanh
    mean, mapped back through tanh, is the reported shift."""
    b = data.batches("expert", 64)[0]
    eta = 3.0

    def linear(bb, u):  # dscore/du = (1, 0, ..., 0)
        return u[..., 0]

    out = actor_signal(policy, linear, [b], "cpu", eta=eta, baseline=policy)
    with torch.no_grad():
        mu, ls = policy(b.obs, b.prev_act)
        jac = 1 - torch.tanh(mu[..., 0]) ** 2
        want = (jac * eta * torch.exp(2 * ls[..., 0]) * jac)[b.mask].mean()
    assert out["actor/q_shift"] == pytest.approx(float(want), rel=1e-5)
    # a floor on b's spread (baseline_log_std_min) lets the same push move the mean further
    wide = actor_signal(policy, linear, [b], "cpu", eta=eta, baseline=policy,
                        baseline_log_std_min=0.0)
    assert wide["actor/q_shift"] > out["actor/q_shift"]


@pytest.mark.parametrize("discriminator", ["structured", "unstructured"])
def test_offline_mberil_reports_it_once_warm(data, discriminator):
    cfg = tiny_mberil_config(discriminator=discriminator)
    algo = OfflineMBERIL(cfg, data, "cpu", 0)
    assert not any(k.startswith("actor/") for k in algo.evaluate())  # no rollouts yet
    for step in range(3):
        algo.train_step(step)
    metrics = algo.evaluate()
    for key in ("actor/q_align", "actor/q_align_top", "actor/gap_top", "actor/q_shift"):
        assert math.isfinite(metrics[key]), key
    assert -1.0 <= metrics["actor/q_align"] <= 1.0
