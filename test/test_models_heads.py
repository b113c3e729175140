"""Policy density, dynamics ensemble, discriminator functions, MLP counterparts, config checks."""

from __future__ import annotations

import math

import pytest
import torch

from mberil_ros.models import (
    Discriminator,
    DiscriminatorConfig,
    DynamicsConfig,
    EncoderConfig,
    GaussianEnsembleDynamics,
    MambaConfig,
    PolicyConfig,
    TanhGaussianPolicy,
)


def enc_cfg(backbone="mamba", act_dim=3):
    return EncoderConfig(obs_dim=5, act_dim=act_dim, backbone=backbone, d_model=16,
                         n_layers=1, context=4, mlp_hidden=16, mamba=MambaConfig(d_state=4))


def test_tanh_gaussian_log_prob_is_the_exact_density_in_1d():
    mu, log_std = torch.tensor([[0.4]]), torch.tensor([[-0.3]])
    # 1) it integrates to one over (-1, 1) (trapezoid on a fine grid, in the atanh variable
    #    to resolve the mass near +-1)
    pre = torch.linspace(-12, 12, 200001, dtype=torch.float64)
    a = torch.tanh(pre)
    dens = TanhGaussianPolicy.log_prob_from_params(
        mu.double(), log_std.double(), a[:, None]).exp()
    integral = torch.trapezoid(dens * (1 - a.square()), pre).item()
    assert abs(integral - 1.0) < 1e-4
    # 2) it matches a histogram of sampled actions
    policy = TanhGaussianPolicy(PolicyConfig(encoder=enc_cfg(act_dim=1), hidden=8))
    torch.manual_seed(0)
    samples, logp = policy.sample_from_params(mu.expand(400000, 1), log_std.expand(400000, 1))
    torch.testing.assert_close(
        logp, TanhGaussianPolicy.log_prob_from_params(mu, log_std, samples), rtol=1e-4,
        atol=1e-4)
    edges = torch.linspace(-0.95, 0.95, 20)
    counts = torch.histc(samples, bins=19, min=-0.95, max=0.95)
    width = edges[1] - edges[0]
    centers = (edges[:-1] + edges[1:]) / 2
    want = TanhGaussianPolicy.log_prob_from_params(mu, log_std, centers[:, None]).exp()
    got = counts / (samples.numel() * width)
    assert (got - want).abs().max().item() < 0.03 * want.max().item()


def test_policy_log_prob_is_finite_at_the_action_bounds():
    policy = TanhGaussianPolicy(PolicyConfig(encoder=enc_cfg(), hidden=8))
    lp = policy.log_prob(torch.randn(2, 3, 5), None, torch.ones(2, 3, 3))
    assert lp.shape == (2, 3) and torch.isfinite(lp).all()


@pytest.mark.parametrize("backbone", ["mamba", "mlp"])
def test_dynamics_ensemble_shapes_and_gaussian_log_prob(backbone):
    torch.manual_seed(0)
    model = GaussianEnsembleDynamics(DynamicsConfig(encoder=enc_cfg(backbone), hidden=16,
                                                    ensemble_size=4))
    obs, prev, act = torch.randn(2, 6, 5), torch.randn(2, 6, 3), torch.randn(2, 6, 3)
    mu, log_std = model(obs, prev, act)
    assert mu.shape == log_std.shape == (4, 2, 6, 5)
    assert not torch.allclose(mu[0], mu[1])  # members differ
    nxt = obs + mu[2] + 0.3 * torch.randn_like(obs)
    lp = model.log_prob(obs, prev, act, nxt)
    want = torch.distributions.Normal(obs + mu, log_std.exp()).log_prob(nxt).sum(-1)
    torch.testing.assert_close(lp, want)
    lp.sum().backward()
    latent = model.encoder(obs, prev)[:, -1]
    y = model.sample(obs[:, -1], latent, act[:, -1])
    assert y.shape == (2, 5)
    with pytest.raises(ValueError, match="next_observation"):
        model.log_prob(obs, prev, act, torch.randn(2, 6, 4))


def test_dynamics_predicts_only_its_dynamic_dims_and_copies_the_rest():
    torch.manual_seed(0)
    model = GaussianEnsembleDynamics(DynamicsConfig(encoder=enc_cfg("mlp"), hidden=16,
                                                    ensemble_size=3, dynamic_dims=[0, 2]))
    obs, act = torch.randn(4, 5), torch.randn(4, 3)
    latent = model.encoder(obs[:, None])[:, 0]
    mu, log_std = model.heads(latent, act)
    assert mu.shape == (3, 4, 2)  # two predicted dims per member
    y = model.sample(obs, latent, act)
    torch.testing.assert_close(y[:, [1, 3, 4]], obs[:, [1, 3, 4]], rtol=0, atol=0)
    assert not torch.allclose(y[:, [0, 2]], obs[:, [0, 2]])
    # the likelihood ignores the static dims entirely
    nxt = obs.clone()
    nxt[:, [0, 2]] += 0.1
    other = nxt.clone()
    other[:, [1, 3, 4]] += 5.0
    seq = lambda t: t[:, None]  # noqa: E731
    torch.testing.assert_close(model.log_prob(seq(obs), None, seq(act), seq(nxt)),
                               model.log_prob(seq(obs), None, seq(act), seq(other)))
    with pytest.raises(ValueError, match="dynamic_dims"):
        DynamicsConfig(encoder=enc_cfg("mlp"), dynamic_dims=[0, 0])


@pytest.mark.parametrize("backbone", ["mamba", "mlp"])
def test_discriminator_functions(backbone):
    torch.manual_seed(0)
    disc = Discriminator(DiscriminatorConfig(encoder=enc_cfg(backbone), hidden=16))
    obs, prev, act = torch.randn(2, 6, 5), torch.randn(2, 6, 3), torch.randn(2, 6, 3)
    out = disc(obs, prev, act)
    assert {k: v.shape for k, v in out.items()} == {k: (2, 6) for k in ("r", "V", "Q")}
    # V reads the history only: changing the current action leaves it unchanged
    out2 = disc(obs, prev, act + 1.0)
    torch.testing.assert_close(out["V"], out2["V"])
    assert not torch.allclose(out["Q"], out2["Q"])


def test_mlp_backbone_uses_the_current_state_only():
    torch.manual_seed(0)
    policy = TanhGaussianPolicy(PolicyConfig(encoder=enc_cfg("mlp"), hidden=8))
    obs = torch.randn(1, 5, 5)
    mu, _ = policy(obs)
    obs2 = obs.clone()
    obs2[:, :-1] += 1.0  # change the history, keep x_t
    torch.testing.assert_close(policy(obs2)[0][:, -1], mu[:, -1])


@pytest.mark.parametrize("make, field", [
    (lambda: EncoderConfig(backbone="lstm"), "backbone"),
    (lambda: EncoderConfig(context=0), "context"),
    (lambda: EncoderConfig(obs_dim=-1), "obs_dim"),
    (lambda: MambaConfig(d_state=0), "d_state"),
    (lambda: MambaConfig(dt_min=0.5, dt_max=0.1), "dt_min"),
    (lambda: PolicyConfig(log_std_min=1.0, log_std_max=0.0), "log_std_min"),
    (lambda: DynamicsConfig(ensemble_size=0), "ensemble_size"),
])
def test_config_validation_names_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_nested_config_from_dicts_and_width_follows_encoder():
    cfg = PolicyConfig(encoder={"d_model": 48, "mamba": {"d_state": 4}})
    assert cfg.encoder.mamba.d_model == 48 and cfg.encoder.mamba.d_state == 4
    assert math.isclose(cfg.encoder.mamba.dt_max, 0.1)
