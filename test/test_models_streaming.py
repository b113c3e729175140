"""Streaming inference against the full-sequence forward (first K steps and past K), bad input
at the API boundary, and the safetensors + JSON round trip."""

from __future__ import annotations

import pytest
import torch

from mberil_ros.models import (
    DiscriminatorConfig,
    DynamicsConfig,
    EncoderConfig,
    MambaConfig,
    PolicyConfig,
    StreamingPolicy,
    TanhGaussianPolicy,
    build_model,
    load_model,
    save_model,
)
from mberil_ros.models.heads import shift_actions

K = 8


def enc_cfg(backbone: str = "mamba") -> EncoderConfig:
    return EncoderConfig(obs_dim=5, act_dim=3, backbone=backbone, d_model=32, n_layers=2,
                         context=K, mlp_hidden=32, mamba=MambaConfig(d_state=8))


def make_policy(backbone: str = "mamba", seed: int = 0) -> TanhGaussianPolicy:
    torch.manual_seed(seed)
    policy = TanhGaussianPolicy(PolicyConfig(encoder=enc_cfg(backbone), hidden=32))
    with torch.no_grad():  # leave the init so the time embedding and dynamics all matter
        for p in policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return policy


@pytest.mark.parametrize("backbone", ["mamba", "mlp"])
def test_streaming_equals_full_sequence_forward_past_context(backbone):
    policy = make_policy(backbone)
    steps = 3 * K + 5  # well past the training context: the documented clamped rule
    obs = torch.randn(2, steps, 5)
    sp = StreamingPolicy(policy)
    sp.reset(batch=2)
    actions = torch.stack([sp.act(obs[:, t]) for t in range(steps)], 1)
    assert sp.t == steps
    with torch.no_grad():
        mu, _ = policy(obs, shift_actions(actions))
    err = (torch.tanh(mu) - actions).abs()
    assert err[:, :K].max().item() <= 1e-5
    assert err.max().item() <= 1e-5
    # The rule past K: t >= K uses the time-embedding row K-1, not a window of the last K.
    if backbone == "mamba":
        with torch.no_grad():
            mu_win, _ = policy(obs[:, -K:], shift_actions(actions)[:, -K:])
        assert (torch.tanh(mu_win[:, -1]) - actions[:, -1]).abs().max() > 1e-4


def test_streaming_single_observation_and_reset():
    policy = make_policy()
    sp = StreamingPolicy(policy)
    sp.reset()
    obs = torch.randn(4, 5)
    first = [sp.act(o) for o in obs]
    assert first[0].shape == (3,) and all(a.abs().max() < 1 for a in first)
    sp.reset()
    again = [sp.act(o) for o in obs]
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bad, field", [
    (torch.randn(6), "observation"),                      # wrong observation width
    (torch.tensor([0.0, float("nan"), 0.0, 0.0, 0.0]), "observation"),
])
def test_streaming_rejects_bad_observation(bad, field):
    sp = StreamingPolicy(make_policy())
    sp.reset()
    with pytest.raises(ValueError, match=field):
        sp.act(bad)


def test_bad_input_raises_clear_errors_at_the_boundary():
    policy = make_policy()
    obs = torch.randn(2, 4, 5)
    with pytest.raises(ValueError, match="observation.*width"):
        policy(torch.randn(2, 4, 7))
    with pytest.raises(ValueError, match="prev_action.*joint count"):
        policy(obs, torch.randn(2, 4, 2))
    with pytest.raises(ValueError, match="action.*joint count"):
        policy.log_prob(obs, None, torch.zeros(2, 4, 4))
    nan_obs = obs.clone()
    nan_obs[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="observation.*NaN"):
        policy(nan_obs)
    sp = StreamingPolicy(policy)
    with pytest.raises(RuntimeError, match="reset"):
        sp.act(torch.zeros(5))
    sp.reset()
    with pytest.raises(ValueError, match="executed_action.*joint count"):
        sp.act(torch.zeros(5), executed_action=torch.zeros(8))


@pytest.mark.parametrize("kind", ["policy", "dynamics", "discriminator"])
def test_save_load_round_trip(tmp_path, kind):
    torch.manual_seed(1)
    cfg = {"policy": PolicyConfig(encoder=enc_cfg(), hidden=16),
           "dynamics": DynamicsConfig(encoder=enc_cfg(), hidden=16, ensemble_size=3),
           "discriminator": DiscriminatorConfig(encoder=enc_cfg("mlp"), hidden=16)}[kind]
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_model(model, tmp_path / "m.safetensors", tmp_path / "m.json")
    loaded = load_model(tmp_path / "m.safetensors", tmp_path / "m.json")
    assert loaded.cfg == model.cfg
    obs, prev, act = torch.randn(2, 6, 5), torch.randn(2, 6, 3), torch.rand(2, 6, 3) * 2 - 1
    with torch.no_grad():
        if kind == "policy":
            torch.testing.assert_close(loaded.log_prob(obs, prev, act),
                                       model.log_prob(obs, prev, act), rtol=0, atol=0)
        elif kind == "dynamics":
            torch.testing.assert_close(loaded(obs, prev, act), model(obs, prev, act),
                                       rtol=0, atol=0)
        else:
            a, b = loaded(obs, prev, act), model(obs, prev, act)
            for key in ("r", "V", "Q"):
                torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_load_rejects_a_bad_config(tmp_path):
    model = make_policy()
    save_model(model, tmp_path / "m.safetensors", tmp_path / "m.json")
    (tmp_path / "bad.json").write_text('{"type": "Nope", "config": {}}')
    with pytest.raises(ValueError, match="config.type"):
        load_model(tmp_path / "m.safetensors", tmp_path / "bad.json")
