"""Streaming inference: one call per control tick, O(1) work per tick.

    sp = StreamingPolicy(policy); sp.reset()
    for each tick: action = sp.act(observation)     # (obs_dim,) or (batch, obs_dim)

The recurrent state (conv + SSM state per layer) advances by one token per call; the window is
never re-run. The previous action fed back as u_{t-1} is the one this object returned (or the
one passed as `executed_action`, when the robot executed something else).

Past the training context K nothing is truncated: the state keeps summarising the whole
episode, and the time-step embedding stays at row K-1 (EncoderConfig "learned_clamped").
Action t therefore equals the full-sequence forward over observations 0..t for every t,
which is what training on sequences that start at the episode start optimises.
"""

from __future__ import annotations

import torch

from mberil_ros.models.encoder import EncoderState, check_input
from mberil_ros.models.heads import TanhGaussianPolicy


class StreamingPolicy:
    def __init__(self, policy: TanhGaussianPolicy, deterministic: bool = True) -> None:
        self.policy = policy.eval()
        self.deterministic = deterministic
        self.state: EncoderState | None = None
        self.prev_action: torch.Tensor | None = None
        self.batch: int | None = None

    def reset(self, batch: int = 1) -> None:
        """Start a new episode (zero state, step 0, previous action 0)."""
        enc = self.policy.encoder
        self.state = enc.init_state(batch)
        self.prev_action = torch.zeros(batch, enc.cfg.act_dim)
        self.batch = batch

    @property
    def t(self) -> int:
        return 0 if self.state is None else self.state.t

    @torch.no_grad()
    def act(self, observation: torch.Tensor,
            executed_action: torch.Tensor | None = None) -> torch.Tensor:
        """Newest observation (obs_dim,) or (batch, obs_dim) -> action of the same rank.
        executed_action, if given, replaces the last returned action as u_{t-1}."""
        if self.state is None:
            raise RuntimeError("StreamingPolicy.act called before reset()")
        cfg = self.policy.cfg.encoder
        obs = torch.as_tensor(observation, dtype=torch.float32)
        check_input("observation", obs, cfg.obs_dim, "observation width")
        single = obs.dim() == 1
        obs = obs.reshape(-1, cfg.obs_dim)
        if obs.shape[0] != self.batch:
            raise ValueError(f"observation: batch {obs.shape[0]} differs from reset({self.batch})")
        if executed_action is not None:
            ea = torch.as_tensor(executed_action, dtype=torch.float32)
            check_input("executed_action", ea, cfg.act_dim, "joint count")
            self.prev_action = ea.reshape(self.batch, cfg.act_dim)
        latent = self.policy.encoder.step(obs, self.prev_action, self.state)
        mu, log_std = self.policy.dist_params(latent)
        if self.deterministic:
            action = torch.tanh(mu)
        else:
            action, _ = self.policy.sample_from_params(mu, log_std)
        self.prev_action = action
        return action[0] if single else action
