"""History encoders: one token per time step -> a latent per step (docs/algorithm.md §7).

Token k is a linear embedding of x_k (``inputs: state``) or of x_k and the previous-action
token ``prev_act[:, k]`` (``state_prev_action``: the codec's standardized u_{k-1} - q_k,
docs/learning.md) plus a time-step embedding, so the latent at step t summarises the
history h_t that ends in x_t. Heads that condition on the
current action u_t (dynamics, r, Q) concatenate it to the latent; V reads the latent alone.
This keeps V(x) independent of u_t and makes the MLP baseline (x_t alone) a drop-in.

Input range (``clip_inputs``): x_k (the observation dims the encoder reads) and its hand
features are clamped to the range they take on the training split (fit_input_range, buffers
in the checkpoint). A value outside it (a taller obstacle than any in training) then reads as
the nearest value the network was fitted on; the previous-action token is not clamped.
With ``obstacle_gate`` the obstacle slots pass HandFeatures' slot gate before either reads
them (and before the clamp, so the gate sees where an obstacle really is).

Time-step embedding ("learned_clamped"): a learned table of `context` rows; step t uses row
min(t, context - 1). Training sequences start at the episode start, so the recurrent state at
step t equals the full-sequence forward over the prefix x_0..x_t, past `context` too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mberil_ros.models import _cpu_kernel
from mberil_ros.models.config import EncoderConfig
from mberil_ros.models.hand_features import HandFeatures
from mberil_ros.models.mamba import Mamba
from mberil_ros.sim.spaces import MAX_OBSTACLES


def check_input(name: str, t: torch.Tensor, width: int, what: str) -> None:
    """API-boundary validation: a clear ValueError naming the field, not a matmul error."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dim() == 0 or t.shape[-1] != width:
        raise ValueError(f"{name}: expected {what} {width} in the last dimension, "
                         f"got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN or infinite values")


class MambaLayer(nn.Module):
    """Pre-norm residual block: h + Mamba(LayerNorm(h))."""

    def __init__(self, cfg: EncoderConfig, idx: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mixer = Mamba(cfg.mamba, layer_idx=idx)

    def forward(self, h: torch.Tensor, impl: str = "auto") -> torch.Tensor:
        return h + self.mixer(self.norm(h), impl=impl)


@dataclass
class EncoderState:
    """Recurrent state of a streaming encoder: per-layer (conv, ssm) states and the step
    (an int, or a (batch,) long tensor when rows are at different steps: prefix_state())."""

    t: int | torch.Tensor = 0
    layers: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    # fused C plans (one per layer), bound to the weights at init_state(); None: torch ops
    plans: list | None = None


class SequenceEncoder(nn.Module):
    """backbone "mamba": embedding + time embedding + pre-norm Mamba stack + final norm.
    backbone "mlp": an MLP on x_t alone (the conventional networks), same interface."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.out_dim = cfg.d_model
        self.uses_prev = cfg.inputs == "state_prev_action"
        self.features = (HandFeatures(cfg.obs_dim, cfg.act_dim // 6, MAX_OBSTACLES,
                                      cfg.features, gate=cfg.obstacle_gate)
                         if cfg.features != "none" else None)
        ignore = set(cfg.ignore_dims or ())
        keep = [i for i in range(cfg.obs_dim) if i not in ignore]
        # config-derived, so not saved: a checkpoint rebuilds it from its policy_config
        self.register_buffer("keep_index", torch.tensor(keep, dtype=torch.long),
                             persistent=False)
        state_dim = len(keep) + (self.features.out_dim if self.features is not None else 0)
        if cfg.clip_inputs:  # +-inf (no clamp) until fit_input_range()
            self.register_buffer("input_low", torch.full((state_dim,), -torch.inf))
            self.register_buffer("input_high", torch.full((state_dim,), torch.inf))
        in_dim = state_dim + (cfg.act_dim if self.uses_prev else 0)
        if cfg.backbone == "mlp":
            self.mlp = nn.Sequential(
                nn.Linear(in_dim, cfg.mlp_hidden), nn.SiLU(),
                nn.Linear(cfg.mlp_hidden, cfg.d_model), nn.SiLU())
            return
        self.embed = nn.Linear(in_dim, cfg.d_model)
        self.time_embed = (nn.Embedding(cfg.context, cfg.d_model)
                           if cfg.time_embedding == "learned_clamped" else None)
        if self.time_embed is not None:
            nn.init.normal_(self.time_embed.weight, std=0.02)
        self.layers = nn.ModuleList(MambaLayer(cfg, i) for i in range(cfg.n_layers))
        self.norm_f = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)

    def _tokens(self, obs: torch.Tensor, prev_act: torch.Tensor, t: torch.Tensor
                ) -> torch.Tensor:
        h = self.embed(self._inputs(obs, prev_act))
        if self.time_embed is not None:
            h = h + self.time_embed(t.clamp(max=self.cfg.context - 1))
        return h

    def _state_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """What the encoder reads from x_t: the kept observation dims and their features,
        before any clamp (obstacle slots through the gate first, when there is one)."""
        feats = None
        if self.features is not None:
            obs, feats = self.features.read(obs)
        x = obs if self.cfg.ignore_dims is None else obs.index_select(-1, self.keep_index)
        return x if feats is None else torch.cat([x, feats], dim=-1)

    @torch.no_grad()
    def fit_input_range(self, obs: torch.Tensor) -> None:
        """Clamp bounds from normalized training observations (n, obs_dim); HandFeatures
        must be configured first."""
        x = self._state_inputs(obs)
        self.input_low.copy_(x.min(0).values)
        self.input_high.copy_(x.max(0).values)

    def _inputs(self, obs: torch.Tensor, prev_act: torch.Tensor | None) -> torch.Tensor:
        x = self._state_inputs(obs)
        if self.cfg.clip_inputs:
            x = torch.maximum(torch.minimum(x, self.input_high), self.input_low)
        parts = [x]
        if self.uses_prev:
            parts.append(prev_act if prev_act is not None
                         else obs.new_zeros(*obs.shape[:-1], self.cfg.act_dim))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def check(self, obs: torch.Tensor, prev_act: torch.Tensor | None) -> None:
        check_input("observation", obs, self.cfg.obs_dim, "observation width")
        if prev_act is not None:
            check_input("prev_action", prev_act, self.cfg.act_dim, "joint count")
            if prev_act.shape[:-1] != obs.shape[:-1]:
                raise ValueError(f"prev_action: leading shape {tuple(prev_act.shape[:-1])} "
                                 f"differs from observation's {tuple(obs.shape[:-1])}")

    def forward(self, obs: torch.Tensor, prev_act: torch.Tensor | None = None,
                impl: str = "auto") -> torch.Tensor:
        """obs (batch, len, obs_dim) from the episode start, prev_act (batch, len, act_dim)
        with prev_act[:, k] the previous-action token of step k (read only with
        ``inputs: state_prev_action``; None = all zeros)
        -> latents (batch, len, d_model); the last token's latent is [:, -1]."""
        self.check(obs, prev_act)
        if self.cfg.backbone == "mlp":
            return self.mlp(self._inputs(obs, prev_act))
        if prev_act is None:
            prev_act = obs.new_zeros(*obs.shape[:-1], self.cfg.act_dim)
        t = torch.arange(obs.shape[1], device=obs.device)
        h = self._tokens(obs, prev_act, t)
        for layer in self.layers:
            h = layer(h, impl=impl)
        return self.norm_f(h)

    def init_state(self, batch: int = 1, fused: bool = True) -> EncoderState:
        """Zero recurrent state for a new episode. fused: bind the fused C step (CPU float32,
        when the kernel builds) to the current weights; re-create the state after the
        weights change."""
        if self.cfg.backbone == "mlp":
            return EncoderState()
        state = EncoderState(0, [layer.mixer.allocate_state(batch) for layer in self.layers])
        state.plans = self._plans(fused)
        return state

    def _plans(self, fused: bool) -> list | None:
        lib = _cpu_kernel.load() if fused else None
        if lib is not None and self.embed.weight.device.type == "cpu" and all(
                p.dtype == torch.float32 for p in self.parameters()):
            return [layer.mixer.fused_step_plan(lib, layer.norm) for layer in self.layers]
        return None

    @torch.no_grad()
    def prefix_state(self, obs: torch.Tensor, prev_act: torch.Tensor | None,
                     lengths: torch.Tensor, impl: str = "auto", fused: bool = True
                     ) -> tuple[torch.Tensor, EncoderState]:
        """One parallel pass over sequences from the episode start that stops each row at its
        own end: obs (batch, len, obs_dim), prev_act as in forward(), lengths (batch,) in
        1..len -> (latents (batch, len, d_model), state). latents[i, :lengths[i]] equal
        forward() (later ones are not meaningful); `state` is what init_state() + lengths[i]
        step() calls over row i's tokens leave (state.t = lengths, per row), so step()
        continues each row from its own end. impl: the scan as in forward(); fused: as in
        init_state()."""
        self.check(obs, prev_act)
        lengths = lengths.to(device=obs.device, dtype=torch.long)
        if lengths.shape != obs.shape[:1] or not (
                (lengths >= 1) & (lengths <= obs.shape[1])).all():
            raise ValueError(f"lengths: expected ({obs.shape[0]},) values in 1..{obs.shape[1]}, "
                             f"got {lengths.tolist()}")
        if self.cfg.backbone == "mlp":
            return self.mlp(self._inputs(obs, prev_act)), EncoderState(lengths.clone())
        if prev_act is None:
            prev_act = obs.new_zeros(*obs.shape[:-1], self.cfg.act_dim)
        h = self._tokens(obs, prev_act, torch.arange(obs.shape[1], device=obs.device))
        states = []
        for layer in self.layers:
            y, conv, ssm = layer.mixer.prefix_state(layer.norm(h), lengths, impl=impl)
            h = h + y
            states.append((conv, ssm))
        return self.norm_f(h), EncoderState(lengths.clone(), states, self._plans(fused))

    @torch.no_grad()
    def step(self, obs: torch.Tensor, prev_act: torch.Tensor | None, state: EncoderState,
             fused: bool = True) -> torch.Tensor:
        """One token per call: obs (batch, obs_dim), prev_act (batch, act_dim) -> latent
        (batch, d_model); advances `state` in place (no window re-computation)."""
        self.check(obs, prev_act)
        if self.cfg.backbone == "mlp":
            state.t = state.t + 1  # a new tensor: never writes into a caller's lengths
            return self.mlp(self._inputs(obs, prev_act))
        if prev_act is None:
            prev_act = obs.new_zeros(*obs.shape[:-1], self.cfg.act_dim)
        t = (state.t if isinstance(state.t, torch.Tensor)
             else torch.full(obs.shape[:-1], state.t, dtype=torch.long, device=obs.device))
        h = self._tokens(obs, prev_act, t)
        if fused and state.plans is not None and obs.device.type == "cpu":
            h = h.contiguous()
            for plan, (conv, ssm) in zip(state.plans, state.layers, strict=True):
                plan(h, conv, ssm, h)  # in place: h += Mamba(LayerNorm(h))
        else:
            for layer, (conv, ssm) in zip(self.layers, state.layers, strict=True):
                h = h + layer.mixer.step(layer.norm(h), conv, ssm, fused=False)
        state.t = state.t + 1  # a new tensor: never writes into a caller's lengths
        return self.norm_f(h)
