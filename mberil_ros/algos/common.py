"""Pieces shared by bc.py and offline_mberil.py: config parsing, network sizes, optimizers,
and sampling that draws every random number from the algorithm's own generator (so a resumed
run reproduces the next losses bit-exactly)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mberil_ros.algos.data import OfflineData
from mberil_ros.models.config import BACKBONES, FEATURES, INPUTS, EncoderConfig, MambaConfig
from mberil_ros.models.encoder import SequenceEncoder
from mberil_ros.models.hand_features import HandFeatures
from mberil_ros.models.heads import tanh_gaussian_log_prob
from mberil_ros.settings import from_mapping


@dataclass
class NetworkConfig:
    """Sizes shared by every network of an algorithm (policy, model, discriminator)."""

    backbone: str = "mamba"  # "mamba": history encoder (§7); "mlp": x_t alone (conventional)
    policy_inputs: str = "state"  # what every network reads at step t: "state" (x_t; Mamba:
    #   tokens of x_k) | "state_prev_action" (x_t and the previous-action token u_{t-1} - q_t;
    #   Mamba: tokens of (x_k, that token)); the token lets a cloned policy copy its last
    #   motion (docs/learning.md), so it is the ablation, not the default
    d_model: int = 64  # encoder width (latent size); 64 x 2 layers is the Mamba size that
    #   reached targets closed loop on CPU budgets (docs/learning.md)
    n_layers: int = 2  # Mamba blocks
    context: int = 32  # K: time-embedding rows; steps past K reuse row K-1
    d_state: int = 16  # Mamba SSM state size
    d_conv: int = 4  # Mamba causal conv width
    expand: int = 2  # Mamba inner width factor
    mlp_hidden: int = 512  # hidden width of the "mlp" backbone's encoder
    head_hidden: int = 512  # hidden width of every head MLP
    features: str = "hand"  # extra inputs computed inside every network from x_t: "none" |
    #   "hand" (forward kinematics: hand xyz, goal - hand, obstacle centres - hand) |
    #   "hand_surface" (obstacle corners and nearest point - hand instead of centres) |
    #   "hand_path" (nearest point - hand, top - hand height, distance to the hand-to-goal
    #   segment; obstacles > 15 cm off that segment read as empty slots)
    policy_ignore: list[str] = field(default_factory=lambda: ["*.vel"])  # observation
    #   features the POLICY does not read, fnmatch patterns on the state names ("*.vel":
    #   joint velocities let a cloned policy copy its last motion, docs/learning.md)
    policy_obstacle_gate: bool = True  # the POLICY reads an obstacle slot only while the
    #   obstacle is within 10-15 cm of the hand's straight way to the goal or of an arm link;
    #   farther, the slot reads as empty (models/hand_features.py; needs features != none).
    #   On since 2026-12-01: it removed most of the Mamba's stops beside obstacles on the
    #   shift test (docs/learning.md); the MLP recipe with distractors was measured without
    clip_inputs: bool = True  # every network clamps x_t and its features to the range they
    #   take on the training split: a value never seen in training (a taller obstacle) reads
    #   as the nearest one seen instead of driving the network where it was never fitted
    #   (docs/learning.md); the bounds are buffers in the checkpoint

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"network.backbone must be one of {BACKBONES}, got "
                             f"{self.backbone!r}")
        if not isinstance(self.policy_ignore, list) or not all(
                isinstance(p, str) for p in self.policy_ignore):
            raise ValueError(f"network.policy_ignore must be a list of patterns, got "
                             f"{self.policy_ignore!r}")
        if self.features not in FEATURES:
            raise ValueError(f"network.features must be one of {FEATURES}, got "
                             f"{self.features!r}")
        if not isinstance(self.policy_obstacle_gate, bool):
            raise ValueError(f"network.policy_obstacle_gate must be true or false, got "
                             f"{self.policy_obstacle_gate!r}")
        if self.policy_obstacle_gate and self.features == "none":
            raise ValueError("network.policy_obstacle_gate (on by default) needs the hand's "
                             "kinematics: set network.features to one of "
                             + ", ".join(FEATURES[1:]) + ", or policy_obstacle_gate to false")
        if not isinstance(self.clip_inputs, bool):
            raise ValueError(f"network.clip_inputs must be true or false, got "
                             f"{self.clip_inputs!r}")
        if self.policy_inputs not in INPUTS:
            raise ValueError(f"network.policy_inputs must be one of {INPUTS}, got "
                             f"{self.policy_inputs!r}")
        for name in ("d_model", "n_layers", "context", "d_state", "d_conv", "expand",
                     "mlp_hidden", "head_hidden"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"network.{name} must be a positive int, got {v!r}")

    def policy_ignore_dims(self, state_names: list[str]) -> list[int] | None:
        """Indices of the state features the policy ignores; a pattern matching nothing is
        an error (a typo would otherwise silently keep the feature)."""
        import fnmatch

        dims: set[int] = set()
        for pattern in self.policy_ignore:
            hits = [i for i, n in enumerate(state_names) if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise ValueError(f"network.policy_ignore: {pattern!r} matches no observation "
                                 f"feature (e.g. {state_names[:3]})")
            dims.update(hits)
        return sorted(dims) or None

    def encoder(self, obs_dim: int, act_dim: int) -> EncoderConfig:
        return EncoderConfig(obs_dim=obs_dim, act_dim=act_dim, backbone=self.backbone,
                             inputs=self.policy_inputs, features=self.features,
                             clip_inputs=self.clip_inputs,
                             d_model=self.d_model, n_layers=self.n_layers, context=self.context,
                             mlp_hidden=self.mlp_hidden,
                             mamba=MambaConfig(d_model=self.d_model, d_state=self.d_state,
                                               d_conv=self.d_conv, expand=self.expand))


def configure_inputs(data: OfflineData, *modules: nn.Module) -> None:
    """Fit what the networks inside ``modules`` compute from x_t to the training split: every
    HandFeatures (observation layout, joints, the codec's normalization, feature statistics),
    then every clipping encoder's input range. Call before moving the modules to a device."""
    features = [m for module in modules for m in module.modules() if isinstance(m, HandFeatures)]
    clipping = [m for module in modules for m in module.modules()
                if isinstance(m, SequenceEncoder) and m.cfg.clip_inputs]
    if not features and not clipping:
        return
    raw = data.train_observations()
    for layer in features:
        layer.configure(data.state_names, data.joint_names, data.codec.obs_mean,
                        data.codec.obs_scale, raw)
    x_n = torch.from_numpy(data.codec.obs(raw))
    for encoder in clipping:
        encoder.fit_input_range(x_n)


def nested(obj: Any, name: str, cls: type) -> None:
    """Turn a dict field into its dataclass (configs read from YAML/JSON)."""
    value = getattr(obj, name)
    if isinstance(value, dict):
        setattr(obj, name, from_mapping(cls, value, f"{type(obj).__name__}.{name}"))
    elif not isinstance(value, cls):
        raise ValueError(f"{type(obj).__name__}.{name} must be a mapping, got {value!r}")


def make_optimizer(modules: Iterable[nn.Module], lr: float, weight_decay: float
                   ) -> torch.optim.Optimizer:
    """AdamW; parameters marked ``_no_weight_decay`` (Mamba's A_log, D), biases and norms
    are never decayed (mamba_ssm's convention)."""
    decay, keep = [], []
    for m in modules:
        for p in m.parameters():
            if getattr(p, "_no_weight_decay", False) or p.dim() < 2:
                keep.append(p)
            else:
                decay.append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": keep, "weight_decay": 0.0}], lr=lr)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def randn(gen: torch.Generator, shape: torch.Size | tuple[int, ...], like: torch.Tensor
          ) -> torch.Tensor:
    """Standard normal noise from ``gen`` (a CPU generator), moved to ``like``'s device."""
    return torch.randn(tuple(shape), generator=gen).to(like.device, like.dtype)


def tanh_gaussian_sample(mu: torch.Tensor, log_std: torch.Tensor, gen: torch.Generator
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised u = tanh(mu + sigma eps) and its exact log density (as
    TanhGaussianPolicy.sample_from_params, but with the algorithm's generator)."""
    pre = mu + torch.exp(log_std) * randn(gen, mu.shape, mu)
    return torch.tanh(pre), tanh_gaussian_log_prob(pre, mu, log_std)


def clone_frozen(module: nn.Module) -> nn.Module:
    """A copy for a baseline / target network: same weights, no gradients."""
    import copy

    twin = copy.deepcopy(module)
    set_requires_grad(twin, False)
    return twin


@torch.no_grad()
def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau source."""
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.lerp_(s, tau)


def seeded(seed: int):
    """Context: deterministic weight init from ``seed`` without touching the global RNG."""
    ctx = torch.random.fork_rng(devices=[])

    class _Seeded:
        def __enter__(self) -> None:
            ctx.__enter__()
            torch.manual_seed(seed)

        def __exit__(self, *exc: object) -> None:
            ctx.__exit__(*exc)

    return _Seeded()


def generator_state(gen: torch.Generator) -> torch.Tensor:
    return gen.get_state().clone()


@contextmanager
def frozen(*modules: nn.Module):
    """No parameter gradients for ``modules`` inside (the gradient still reaches inputs)."""
    for m in modules:
        set_requires_grad(m, False)
    try:
        yield
    finally:
        for m in modules:
            set_requires_grad(m, True)
