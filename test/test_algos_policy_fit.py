"""The held-out policy fit: NLL_pi and where the expert's actions lie under pi (pi_expert_z)."""

from __future__ import annotations

import math

import pytest
import torch
from algos_tester import tiny_data, tiny_mberil_config
from torch import nn

from mberil_ros.algos.bc import CALIBRATED_Z, TAIL_Z, TRIM_SHARE, evaluate_policy_fit, expert_z
from mberil_ros.algos.offline_mberil import OfflineMBERIL


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("fit"))


def test_expert_z_is_the_distance_in_pis_sigmas_and_a_perfect_match_gives_the_normal_median():
    mu, log_std = torch.tensor([0.2, -0.1]), torch.log(torch.tensor([0.01, 0.05]))
    act = torch.tanh(mu + torch.tensor([3.0, -0.5]) * torch.exp(log_std))
    torch.testing.assert_close(expert_z(mu, log_std, act), torch.tensor([3.0, 0.5]), atol=1e-3,
                               rtol=0)
    g = torch.Generator().manual_seed(0)
    mu, log_std = torch.rand(20000, 3, generator=g) - 0.5, torch.full((20000, 3), -4.0)
    sampled = torch.tanh(mu + torch.exp(log_std) * torch.randn(20000, 3, generator=g))
    z = expert_z(mu, log_std, sampled)
    assert float(z.median()) == pytest.approx(CALIBRATED_Z, abs=0.02)
    assert float((z > TAIL_Z).float().mean()) == pytest.approx(0.01, abs=0.003)


class _Broader(nn.Module):
    """The same policy with every sigma multiplied by e."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy
        self.log_prob_from_params = policy.log_prob_from_params

    def forward(self, obs, prev):
        mu, log_std = self.policy(obs, prev)
        return mu, log_std + 1.0


def test_policy_fit_reports_the_median_z_of_the_held_out_expert_actions(data):
    algo = OfflineMBERIL(tiny_mberil_config(), data, "cpu", 0)
    fit = evaluate_policy_fit(algo.policy, data, 4, torch.device("cpu"))
    zs = []
    with torch.no_grad():
        for b in data.batches("expert", 4):
            zs.append(expert_z(*algo.policy(b.obs, b.prev_act), b.act)[b.mask].flatten())
    z = torch.cat(zs)
    assert fit["pi_expert_z"] == pytest.approx(float(z.median()), rel=1e-5)
    assert fit["pi_expert_tail"] == pytest.approx(float((z > TAIL_Z).float().mean()))
    broader = evaluate_policy_fit(_Broader(algo.policy), data, 4, torch.device("cpu"))
    assert broader["pi_expert_z"] == pytest.approx(fit["pi_expert_z"] / math.e, rel=1e-4)
    assert broader["nll_pi"] != pytest.approx(fit["nll_pi"])
    assert broader["pi_expert_tail"] <= fit["pi_expert_tail"]
    assert {"nll_pi", "nll_pi_trim", "pi_expert_z", "pi_expert_tail"} <= set(algo.evaluate())


def test_the_trimmed_nll_leaves_out_only_the_worst_steps(data):
    algo = OfflineMBERIL(tiny_mberil_config(), data, "cpu", 0)
    with torch.no_grad():
        nll = torch.cat([-algo.policy.log_prob(b.obs, b.prev_act, b.act)[b.mask]
                         for b in data.batches("expert", 4)]).double()
    fit = evaluate_policy_fit(algo.policy, data, 4, torch.device("cpu"))
    dropped = math.ceil(TRIM_SHARE * nll.numel())
    assert nll.numel() > 10 * dropped
    assert fit["nll_pi"] == pytest.approx(float(nll.mean()), rel=1e-6)
    assert fit["nll_pi_trim"] == pytest.approx(float(nll.sort().values[:-dropped].mean()),
                                               rel=1e-6)
    # one step thousands of nats deep moves the mean; the trimmed mean moves at most by one
    # step re-entering at the cut
    whole = evaluate_policy_fit(algo.policy, data, 10_000, torch.device("cpu"))  # one batch
    off = evaluate_policy_fit(_FirstStepOff(algo.policy), data, 10_000, torch.device("cpu"))
    assert off["nll_pi"] > whole["nll_pi"] + 1000 / nll.numel()
    bound = float(nll.max() - nll.min()) / (nll.numel() - dropped)
    assert abs(off["nll_pi_trim"] - whole["nll_pi_trim"]) <= bound + 1e-6


class _FirstStepOff(_Broader):
    """The same policy with its mean moved 100 sigmas off on the first step of the batch's
    first episode."""

    def forward(self, obs, prev):
        mu, log_std = self.policy(obs, prev)
        mu = mu.clone()
        mu[0, 0] += 100 * torch.exp(log_std[0, 0])
        return mu, log_std
