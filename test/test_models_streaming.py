"""Streaming (one encoder step per tick) against the full-sequence forward, first K steps and
past K, and bad input at the API boundary. PolicyRuntime streams through exactly this."""

from __future__ import annotations

import pytest
import torch

from mberil_ros.models import EncoderConfig, MambaConfig, PolicyConfig, TanhGaussianPolicy

K = 8


def make_policy(backbone: str = "mamba", seed: int = 0) -> TanhGaussianPolicy:
    torch.manual_seed(seed)
    enc = EncoderConfig(obs_dim=5, act_dim=3, backbone=backbone, inputs="state_prev_action",
                        d_model=32, n_layers=2,
                        context=K, mlp_hidden=32, mamba=MambaConfig(d_state=8))
    policy = TanhGaussianPolicy(PolicyConfig(encoder=enc, hidden=32)).eval()
    with torch.no_grad():  # leave the init so the time embedding and dynamics all matter
        for p in policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return policy


def stream(policy: TanhGaussianPolicy, obs: torch.Tensor, prev: torch.Tensor,
           fused: bool = True) -> torch.Tensor:
    state = policy.encoder.init_state(obs.shape[0], fused=fused)
    with torch.no_grad():
        return torch.stack([policy.dist_params(policy.encoder.step(
            obs[:, t], prev[:, t], state, fused=fused))[0] for t in range(obs.shape[1])], 1)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("backbone", ["mamba", "mlp"])
def test_streaming_equals_full_sequence_forward_past_context(backbone, fused):
    policy = make_policy(backbone)
    steps = 3 * K + 5  # well past the training context: the documented clamped rule
    obs, prev = torch.randn(2, steps, 5), torch.randn(2, steps, 3)
    mu_stream = stream(policy, obs, prev, fused)
    with torch.no_grad():
        mu, _ = policy(obs, prev)
    torch.testing.assert_close(mu_stream, mu, rtol=1e-4, atol=1e-5)
    # The rule past K: t >= K uses the time-embedding row K-1, not a window of the last K.
    if backbone == "mamba":
        with torch.no_grad():
            mu_win, _ = policy(obs[:, -K:], prev[:, -K:])
        assert (mu_win[:, -1] - mu_stream[:, -1]).abs().max() > 1e-4


def test_a_new_state_restarts_the_episode():
    policy = make_policy()
    obs, prev = torch.randn(1, 6, 5), torch.randn(1, 6, 3)
    torch.testing.assert_close(stream(policy, obs, prev), stream(policy, obs, prev),
                               rtol=0, atol=0)


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
    state = policy.encoder.init_state(1)
    with pytest.raises(ValueError, match="observation"):
        policy.encoder.step(torch.zeros(1, 6), torch.zeros(1, 3), state)
