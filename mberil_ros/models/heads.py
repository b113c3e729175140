"""Policy, dynamics and discriminator functions on top of a SequenceEncoder.

Sequence tensors are (batch, len, ·) and start at the episode start; every method returns a
value per step, so losses can use every step (docs/algorithm.md §7 "train the way you infer").
With `backbone: mlp` the same classes are the conventional Offline-MB-ERIL networks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mberil_ros.models.config import DiscriminatorConfig, DynamicsConfig, PolicyConfig
from mberil_ros.models.encoder import SequenceEncoder, check_input

_LOG_2PI = math.log(2 * math.pi)
# atanh of an action this close to +-1 is still finite in float32
_ACT_EPS = 1e-6


def pre_tanh(action: torch.Tensor) -> torch.Tensor:
    """atanh of an action in [-1, 1], kept finite at the bounds."""
    return torch.atanh(action.clamp(-1 + _ACT_EPS, 1 - _ACT_EPS))


def gaussian_log_prob_per_dim(x: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor
                              ) -> torch.Tensor:
    """ln N(x; mu, sigma) per dimension."""
    z = (x - mu) * torch.exp(-log_std)
    return -0.5 * z.square() - log_std - 0.5 * _LOG_2PI


def gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """ln N(x; mu, diag sigma^2), summed over the last dim."""
    return gaussian_log_prob_per_dim(x, mu, log_std).sum(-1)


def tanh_gaussian_log_prob(pre: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor
                           ) -> torch.Tensor:
    """ln density of u = tanh(pre), pre ~ N(mu, sigma): ln N(pre) - sum ln(1 - u^2), with
    ln(1 - tanh(x)^2) = 2 (ln 2 - x - softplus(-2x)): exact and stable for large |x|."""
    log_jac = 2.0 * (math.log(2.0) - pre - F.softplus(-2.0 * pre))
    return gaussian_log_prob(pre, mu, log_std) - log_jac.sum(-1)


def mixture_log_prob(mu: torch.Tensor, log_std: torch.Tensor, delta: torch.Tensor
                     ) -> torch.Tensor:
    """ln p(delta) of an ensemble as an equal-weight mixture: mu/log_std (E, ..., D)."""
    per_member = gaussian_log_prob(delta.unsqueeze(0), mu, log_std)
    return torch.logsumexp(per_member, 0) - math.log(mu.shape[0])


def mixture_log_prob_per_dim(mu: torch.Tensor, log_std: torch.Tensor, delta: torch.Tensor
                             ) -> torch.Tensor:
    """Per-dim marginals of the mixture: (..., D) log densities."""
    per = gaussian_log_prob_per_dim(delta.unsqueeze(0), mu, log_std)
    return torch.logsumexp(per, 0) - math.log(mu.shape[0])


def mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                         nn.Linear(hidden, out))


def soft_clamp(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Squash into [lo, hi] smoothly (a hard clamp would stop the gradient at the bounds)."""
    return lo + 0.5 * (hi - lo) * (torch.tanh(x) + 1.0)


class TanhGaussianPolicy(nn.Module):
    """pi(u | h_t) = tanh(N(mu, sigma)): actions in (-1, 1), in normalised units."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = SequenceEncoder(cfg.encoder)
        self.head = mlp(self.encoder.out_dim, cfg.hidden, 2 * cfg.encoder.act_dim)

    def dist_params(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, s = self.head(latent).chunk(2, dim=-1)
        return mu, soft_clamp(s, self.cfg.log_std_min, self.cfg.log_std_max)

    def forward(self, obs: torch.Tensor, prev_act: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, log_std) of the pre-tanh Gaussian at every step."""
        return self.dist_params(self.encoder(obs, prev_act))

    @staticmethod
    def log_prob_from_params(mu: torch.Tensor, log_std: torch.Tensor, action: torch.Tensor
                             ) -> torch.Tensor:
        """Exact log density of a in (-1,1)^d: log N(atanh a) - sum log(1 - a^2)."""
        pre = pre_tanh(action)
        return tanh_gaussian_log_prob(pre, mu, log_std)

    def log_prob(self, obs: torch.Tensor, prev_act: torch.Tensor | None,
                 action: torch.Tensor) -> torch.Tensor:
        """ln pi(u_t | h_t) for every step: (batch, len)."""
        check_input("action", action, self.cfg.encoder.act_dim, "joint count")
        mu, log_std = self(obs, prev_act)
        return self.log_prob_from_params(mu, log_std, action)

    def sample_from_params(self, mu: torch.Tensor, log_std: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample and its exact log-probability."""
        pre = mu + torch.exp(log_std) * torch.randn_like(mu)
        return torch.tanh(pre), tanh_gaussian_log_prob(pre, mu, log_std)

    def sample(self, obs: torch.Tensor, prev_act: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sample_from_params(*self(obs, prev_act))


class GaussianEnsembleDynamics(nn.Module):
    """p(x_{t+1} | h_t, u_t): an ensemble of E Gaussian heads over the delta x_{t+1} - x_t of
    the dynamic dims (``cfg.dynamic_dims``); the other dims of x_{t+1} are x_t's."""

    def __init__(self, cfg: DynamicsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = SequenceEncoder(cfg.encoder)
        self.dims = (list(cfg.dynamic_dims) if cfg.dynamic_dims is not None
                     else list(range(cfg.encoder.obs_dim)))
        self.register_buffer("_dims", torch.tensor(self.dims, dtype=torch.long),
                             persistent=False)
        e, obs_dim = cfg.ensemble_size, len(self.dims)
        inp = self.encoder.out_dim + cfg.encoder.act_dim
        # Ensemble members as batched weights: one einsum instead of E small matmuls.
        dims = [inp, cfg.hidden, cfg.hidden, 2 * obs_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            w = torch.empty(e, a, b)
            for i in range(e):
                nn.init.kaiming_uniform_(w[i].T, a=math.sqrt(5))  # nn.Linear's default
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(e, 1, b)))

    def heads(self, latent: torch.Tensor, act: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """latent (..., d), act (..., act_dim) -> mean delta, log_std: (E, ..., obs_dim)."""
        lead = latent.shape[:-1]
        h = torch.cat([latent, act], -1).reshape(1, -1, latent.shape[-1] + act.shape[-1])
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.einsum("eni,eio->eno", h.expand(w.shape[0], -1, -1), w) + b
            if i < len(self.weights) - 1:
                h = F.silu(h)
        mu, s = h.reshape(h.shape[0], *lead, -1).chunk(2, dim=-1)
        return mu, soft_clamp(s, self.cfg.log_std_min, self.cfg.log_std_max)

    def forward(self, obs: torch.Tensor, prev_act: torch.Tensor | None, act: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        check_input("action", act, self.cfg.encoder.act_dim, "joint count")
        return self.heads(self.encoder(obs, prev_act), act)

    def log_prob(self, obs: torch.Tensor, prev_act: torch.Tensor | None, act: torch.Tensor,
                 next_obs: torch.Tensor) -> torch.Tensor:
        """ln p(x_{t+1} | h_t, u_t) per member and step: (E, batch, len)."""
        check_input("next_observation", next_obs, self.cfg.encoder.obs_dim, "observation width")
        mu, log_std = self(obs, prev_act, act)
        return gaussian_log_prob(self.delta(obs, next_obs), mu, log_std)

    def delta(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """What the model predicts of a transition: next - current on the dynamic dims."""
        return (next_obs - obs).index_select(-1, self._dims)

    def compose(self, obs: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """The next state from x_t and a predicted delta (static dims copied)."""
        return obs.index_add(-1, self._dims, delta)

    def sample(self, obs: torch.Tensor, latent: torch.Tensor, act: torch.Tensor,
               member: torch.Tensor | None = None) -> torch.Tensor:
        """Next state from a latent (e.g. an encoder step); member picks one ensemble member
        per batch row (random when None)."""
        mu, log_std = self.heads(latent, act)
        if member is None:
            member = torch.randint(mu.shape[0], latent.shape[:1], device=latent.device)
        idx = torch.arange(latent.shape[0], device=latent.device)
        mu, log_std = mu[member, idx], log_std[member, idx]
        return self.compose(obs, mu + torch.exp(log_std) * torch.randn_like(mu))


class Discriminator(nn.Module):
    """The structured discriminators' functions r(x,u), V(x), Q(x,u) on one shared encoder."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = SequenceEncoder(cfg.encoder)
        d, a = self.encoder.out_dim, cfg.encoder.act_dim
        self.r_head = mlp(d + a, cfg.hidden, 1)
        self.v_head = mlp(d, cfg.hidden, 1)
        self.q_head = mlp(d + a, cfg.hidden, 1)

    def r(self, latent: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.r_head(torch.cat([latent, act], -1)).squeeze(-1)

    def V(self, latent: torch.Tensor) -> torch.Tensor:  # noqa: N802 (the paper's name)
        return self.v_head(latent).squeeze(-1)

    def Q(self, latent: torch.Tensor, act: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self.q_head(torch.cat([latent, act], -1)).squeeze(-1)

    def forward(self, obs: torch.Tensor, prev_act: torch.Tensor | None, act: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        """r, V, Q at every step: each (batch, len). V(y) of the next state is V at step t+1
        of the same sequence, or one encoder.step() past its end (no re-run)."""
        check_input("action", act, self.cfg.encoder.act_dim, "joint count")
        latent = self.encoder(obs, prev_act)
        return {"r": self.r(latent, act), "V": self.V(latent), "Q": self.Q(latent, act)}


class UnstructuredDiscriminator(nn.Module):
    """Free logit networks (the ablation of §4): f_pi(h_t, u_t) and f_m(h_t, u_t, y - x_t)."""

    def __init__(self, cfg: DiscriminatorConfig, delta_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = SequenceEncoder(cfg.encoder)
        d, a, o = self.encoder.out_dim, cfg.encoder.act_dim, delta_dim
        self.pi_head = mlp(d + a, cfg.hidden, 1)
        self.m_head = mlp(d + a + o, cfg.hidden, 1)

    def f_pi(self, latent: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.pi_head(torch.cat([latent, act], -1)).squeeze(-1)

    def f_m(self, latent: torch.Tensor, act: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return self.m_head(torch.cat([latent, act, delta], -1)).squeeze(-1)
