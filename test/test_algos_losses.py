"""Loss pieces of Offline-MB-ERIL (docs/algorithm.md §4-§5) and which networks each step trains."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from algos_tester import tiny_data, tiny_mberil_config

from mberil_ros.algos import losses as L
from mberil_ros.algos.offline_mberil import OfflineMBERIL


def naive_logistic(z_pos, z_unl, z_gen):
    """All sub-optimal samples are negatives: the Online-MB-ERIL recipe run offline."""
    return (-F.logsigmoid(z_pos).mean() + 0.5 * -F.logsigmoid(-z_unl).mean()
            + 0.5 * -F.logsigmoid(-z_gen).mean())


def test_pu_loss_at_alpha_zero_is_the_naive_logistic_loss():
    g = torch.Generator().manual_seed(0)
    z_pos, z_unl, z_gen = (torch.randn(n, generator=g) * 3 for n in (7, 11, 5))
    res = L.PUDiscriminatorLoss(0.0)(z_pos, z_unl, z_gen)
    assert not res.corrected
    assert torch.allclose(res.loss, naive_logistic(z_pos, z_unl, z_gen), atol=1e-6)
    assert torch.allclose(res.risk, res.loss)


def test_pu_loss_with_positive_prior_matches_the_formula():
    z_pos, z_unl, z_gen = torch.tensor([1.0, -0.5]), torch.tensor([-2.0, 0.3, 1.0]), \
        torch.tensor([0.2])
    a = 0.3
    r_n = (F.softplus(z_unl).mean() - a * F.softplus(z_pos).mean()) / (1 - a)
    want = F.softplus(-z_pos).mean() + 0.5 * r_n + 0.5 * F.softplus(z_gen).mean()
    res = L.PUDiscriminatorLoss(a)(z_pos, z_unl, z_gen)
    assert r_n > 0 and not res.corrected
    assert torch.allclose(res.loss, want) and torch.allclose(res.r_n, r_n)


def test_pu_non_negative_correction_steps_on_minus_r_n():
    # positives scored as very negative-looking and unlabeled as confidently negative:
    # E_S[l-] is tiny and alpha E_E[l-] large, so the estimated negative risk R_N < 0
    z_pos = torch.tensor([4.0, 5.0], requires_grad=True)
    z_unl = torch.tensor([-6.0, -5.0, -7.0], requires_grad=True)
    z_gen = torch.tensor([-1.0], requires_grad=True)
    alpha = 0.5
    res = L.PUDiscriminatorLoss(alpha)(z_pos, z_unl, z_gen)
    r_n = (F.softplus(z_unl.detach()).mean() - alpha * F.softplus(z_pos.detach()).mean()) / 0.5
    assert r_n < 0 and res.corrected
    assert torch.allclose(res.loss, -r_n) and torch.allclose(res.r_n, r_n)
    # the reported risk clamps R_N at zero
    want_risk = F.softplus(-z_pos.detach()).mean() + 0.5 * F.softplus(z_gen.detach()).mean()
    assert torch.allclose(res.risk, want_risk)
    res.loss.backward()
    # gradient descent on -R_N raises the unlabeled logits and lowers the positive ones,
    # and the generated samples take no part in the corrective step
    assert (z_unl.grad < 0).all() and (z_pos.grad > 0).all()
    assert z_gen.grad is None or torch.all(z_gen.grad == 0)


def test_pu_loss_rejects_bad_alpha_and_missing_unlabeled_data():
    with pytest.raises(ValueError, match="alpha"):
        L.PUDiscriminatorLoss(1.0)
    with pytest.raises(ValueError, match="unlabeled"):
        L.PUDiscriminatorLoss(0.2)(torch.zeros(2), None, torch.zeros(2))
    res = L.PUDiscriminatorLoss(0.0)(torch.zeros(2), None, torch.zeros(2))
    assert math.isclose(float(res.loss), 1.5 * math.log(2), rel_tol=1e-6)


def test_structured_logits_on_a_hand_computed_example():
    q, v, log_b, log_pi = (torch.tensor([x]) for x in (2.0, 0.5, -1.0, -3.0))
    # 0.5 * (2 - 0.5) + (0.5 / 2) * (-1) - (-3) = 0.75 - 0.25 + 3 = 3.5
    z = L.structured_policy_logit(q, v, log_b, log_pi, beta=0.5, eta=2.0)
    assert torch.allclose(z, torch.tensor([3.5]))
    r, v_next, log_q, log_p = (torch.tensor([x]) for x in (1.0, 4.0, -2.0, -0.5))
    # 0.4 * (1 + 0.9 * 4 - 2) + (0.4 / 0.8) * (-2) - (-0.5) = 1.04 - 1 + 0.5 = 0.54
    z = L.structured_model_logit(r, v_next, q, log_q, log_p, beta=0.4, eta=0.8, gamma=0.9)
    assert torch.allclose(z, torch.tensor([0.54]))


def test_structured_logits_treat_log_densities_as_constants():
    log_pi = torch.tensor([-1.0], requires_grad=True)
    q = torch.tensor([1.0], requires_grad=True)
    L.structured_policy_logit(q, torch.zeros(1), torch.zeros(1), log_pi, 1.0, 1.0).sum() \
        .backward()
    assert log_pi.grad is None and q.grad is not None


def test_actor_and_model_losses_match_the_formulas():
    log_pi, log_b, score = torch.tensor([-1.0, 0.0]), torch.tensor([-2.0, -1.0]), \
        torch.tensor([3.0, 1.0])
    want = (log_pi - 0.5 * log_b - 0.5 * score).mean()
    assert torch.allclose(L.actor_loss(log_pi, log_b, score, beta=0.5, eta=1.0), want)
    nll = torch.tensor([2.0, 4.0])
    want = (log_pi - 0.25 * log_b - 0.5 * score).mean() + 0.1 * 3.0
    assert torch.allclose(L.model_loss(log_pi, log_b, score, nll, 0.5, 2.0, 0.1), want)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("grads"))


def grads(module):
    return [p.grad for p in module.parameters() if p.grad is not None and p.grad.abs().sum() > 0]


@pytest.mark.parametrize("discriminator", ["structured", "unstructured"])
@pytest.mark.parametrize("backbone", ["mamba", "mlp"])
def test_each_step_trains_only_its_own_networks(data, discriminator, backbone):
    cfg = tiny_mberil_config(backbone, discriminator=discriminator, fifo_size=8)
    algo = OfflineMBERIL(cfg, data, "cpu", 0)
    algo.train_step(0)  # warm start
    algo.rollout()
    nets = {"policy": algo.policy, "model": algo.model, "disc": algo.disc,
            "policy_base": algo.policy_base, "model_base": algo.model_base}
    for step, owner in ((algo.discriminator_step, "disc"), (algo.policy_step, "policy"),
                        (algo.model_step, "model")):
        for m in nets.values():
            m.zero_grad(set_to_none=True)
        step()
        assert grads(nets[owner]), f"{owner} got no gradient in its own step"
        for name, m in nets.items():
            if name != owner:
                assert not grads(m), f"{step.__name__} leaked gradients into {name}"
        # frozen modules are unfrozen again afterwards (baselines stay frozen)
        assert all(p.requires_grad for p in algo.disc.parameters())
        assert not any(p.requires_grad for p in algo.policy_base.parameters())


def test_the_uniform_mixture_bounds_a_density_from_below_and_keeps_its_mode():
    log_p = torch.tensor([5.0, -3.0, -1e4])  # at a sharp mode, nearby, far off its support
    eps, d = 1e-3, 6
    mixed = L.mix_uniform(log_p, eps, d)
    floor = math.log(eps) - d * math.log(2.0)
    want = torch.log((1 - eps) * torch.exp(log_p.double()) + eps * 2.0 ** -d).float()
    torch.testing.assert_close(mixed, want)
    assert mixed.min() >= floor - 1e-6 and mixed[2] == pytest.approx(floor, abs=1e-6)
    assert mixed[0] == pytest.approx(5.0 + math.log1p(-eps), abs=1e-4)
    assert torch.equal(L.mix_uniform(log_p, 0.0, d), log_p)


def test_the_policy_logit_reads_the_mixed_densities(data):
    cfg = tiny_mberil_config(baseline="mle", logit_uniform_mix=0.01, bc_warmstart_steps=0,
                             model_warmstart_steps=0)
    algo = OfflineMBERIL(cfg, data, "cpu", 0)
    b = data.sample("suboptimal", 4, torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in algo.policy.parameters():  # pi and b apart, as after a few policy steps
            p.add_(0.05)
        lat = algo.disc.encoder(b.obs, b.prev_act)
        log_pi = algo.policy.log_prob(b.obs, b.prev_act, b.act)
        log_b = algo._log_b(b.obs, b.prev_act, b.act)
        d = b.act.shape[-1]
        want = L.structured_policy_logit(
            algo.disc.Q(lat, b.act), algo.disc.V(lat), L.mix_uniform(log_b, 0.01, d),
            L.mix_uniform(log_pi, 0.01, d), cfg.beta_pi, cfg.eta_pi)
        got = algo._policy_logit(b.obs, b.prev_act, b.act)
        torch.testing.assert_close(got, want)
        algo.cfg.logit_uniform_mix = 0.0
        plain = algo._policy_logit(b.obs, b.prev_act, b.act)
        assert not torch.allclose(plain, got)


def test_real_negatives_add_pis_actions_on_the_expert_states(data):
    cfg = tiny_mberil_config(bc_warmstart_steps=0, model_warmstart_steps=0, fifo_size=8)
    sizes = {}
    for flag in (False, True):
        cfg.disc_real_negatives = flag
        algo = OfflineMBERIL(cfg, data, "cpu", 0)
        algo.rollout()
        seen = {}
        pu = algo.pu

        def spy(z_e, z_s, z_g, pu=pu, seen=seen):
            seen.update(e=z_e.numel(), g=z_g.numel())
            return pu(z_e, z_s, z_g)

        algo.pu = spy
        algo.discriminator_step()
        sizes[flag] = seen
    # the same draws: the extra generated samples are one per valid expert step
    assert sizes[True]["e"] == sizes[False]["e"]
    assert sizes[True]["g"] == sizes[False]["g"] + sizes[True]["e"]
