"""Model configuration dataclasses (LeRobot style: plain fields, validated in __post_init__).

Every error names the field. `to_dict` / `from_dict` round-trip through JSON for checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

BACKBONES = ("mamba", "mlp")
# what every network reads at step t: x_t alone, or x_t and the previous-action token
INPUTS = ("state", "state_prev_action")
# extra inputs computed inside the network from x_t: none, or the hand's forward kinematics
# relative to the goal and the obstacles' centres ("hand") or their corners and nearest
# points ("hand_surface"), or only those near the hand's way to the goal ("hand_path");
# models/hand_features.py
FEATURES = ("none", "hand", "hand_surface", "hand_path")
TIME_EMBEDDINGS = ("learned_clamped", "none")


def _head_config(obj: object, *positive: str) -> None:
    """Shared checks of the head configs: a nested encoder given as a mapping, positive
    sizes, an ordered log-std range (where there is one)."""
    if isinstance(obj.encoder, dict):
        obj.encoder = EncoderConfig(**obj.encoder)
    _positive(obj, *positive)
    low, high = getattr(obj, "log_std_min", None), getattr(obj, "log_std_max", None)
    if low is not None and not low < high:
        raise ValueError(f"{type(obj).__name__}.log_std_min must be < log_std_max, got "
                         f"{low}, {high}")


def _positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{type(obj).__name__}.{name} must be a positive int, got {value!r}")


@dataclass
class MambaConfig:
    """One Mamba block, mamba_ssm.Mamba's arguments and defaults."""

    d_model: int = 128
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | None = None  # None: ceil(d_model / 16), as mamba_ssm's "auto"
    dt_min: float = 1e-3
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    dt_scale: float = 1.0
    conv_bias: bool = True
    bias: bool = False
    use_fast_path: bool = True

    def __post_init__(self) -> None:
        _positive(self, "d_model", "d_state", "d_conv", "expand")
        if self.dt_rank is not None:
            _positive(self, "dt_rank")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"MambaConfig.dt_min/dt_max need 0 < dt_min <= dt_max, got "
                             f"{self.dt_min}, {self.dt_max}")
        if self.d_state > 256:
            raise ValueError(f"MambaConfig.d_state must be <= 256, got {self.d_state}")

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def resolved_dt_rank(self) -> int:
        return self.dt_rank if self.dt_rank is not None else math.ceil(self.d_model / 16)


@dataclass
class EncoderConfig:
    """History encoder: one token per step (x_k, with ``state_prev_action`` also the
    previous-action token) -> a latent per step (docs/algorithm.md §7).

    backbone "mlp" ignores the history and encodes the newest token alone (the conventional
    Offline-MB-ERIL networks). `context` is the training sequence length K; the time-step
    embedding of step t >= K uses the row of K-1 ("learned_clamped"), so inference past K is
    defined and matches a full-sequence forward over the same prefix.
    """

    obs_dim: int = 14
    act_dim: int = 7
    backbone: str = "mamba"
    inputs: str = "state"  # one of INPUTS (both backbones; NetworkConfig.policy_inputs)
    features: str = "none"  # one of FEATURES
    ignore_dims: list[int] | None = None  # observation dims this encoder does not read
    obstacle_gate: bool = False  # read obstacle slots through HandFeatures' slot gate
    clip_inputs: bool = False  # clamp x_t and its features to the training split's range
    d_model: int = 128
    n_layers: int = 4
    context: int = 32
    time_embedding: str = "learned_clamped"
    mlp_hidden: int = 256
    norm_eps: float = 1e-5
    mamba: MambaConfig = field(default_factory=MambaConfig)

    def __post_init__(self) -> None:
        if isinstance(self.mamba, dict):
            self.mamba = MambaConfig(**self.mamba)
        _positive(self, "obs_dim", "act_dim", "d_model", "n_layers", "context", "mlp_hidden")
        if self.backbone not in BACKBONES:
            raise ValueError(f"EncoderConfig.backbone must be one of {BACKBONES}, "
                             f"got {self.backbone!r}")
        if self.inputs not in INPUTS:
            raise ValueError(f"EncoderConfig.inputs must be one of {INPUTS}, got {self.inputs!r}")
        if self.features not in FEATURES:
            raise ValueError(f"EncoderConfig.features must be one of {FEATURES}, "
                             f"got {self.features!r}")
        if self.ignore_dims is not None:
            dims = sorted({int(d) for d in self.ignore_dims})
            if not all(0 <= d < self.obs_dim for d in dims) or len(dims) >= self.obs_dim:
                raise ValueError(f"EncoderConfig.ignore_dims must be indices in "
                                 f"[0, {self.obs_dim}) leaving at least one, got "
                                 f"{self.ignore_dims!r}")
            self.ignore_dims = dims or None
        if not isinstance(self.obstacle_gate, bool):
            raise ValueError(f"EncoderConfig.obstacle_gate must be true or false, got "
                             f"{self.obstacle_gate!r}")
        if self.obstacle_gate and self.features == "none":
            raise ValueError("EncoderConfig.obstacle_gate needs the hand's kinematics: set "
                             "features to one of " + ", ".join(FEATURES[1:]))
        if self.features != "none" and self.act_dim % 6:
            raise ValueError(f"EncoderConfig.features {self.features!r} needs 6 joints per "
                             f"arm, got act_dim {self.act_dim}")
        if self.time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(f"EncoderConfig.time_embedding must be one of {TIME_EMBEDDINGS}, "
                             f"got {self.time_embedding!r}")
        if self.mamba.d_model != self.d_model:
            # One source of truth: the block width follows the encoder width.
            self.mamba = dataclasses.replace(self.mamba, d_model=self.d_model)


@dataclass
class PolicyConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    hidden: int = 256
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    def __post_init__(self) -> None:
        _head_config(self, "hidden")


@dataclass
class DynamicsConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    ensemble_size: int = 5
    hidden: int = 256
    log_std_min: float = -10.0
    log_std_max: float = 0.5
    # observation dims the model predicts (joint positions and velocities); the others (goal,
    # obstacles: constant within an episode) are copied from x_t. None: every dim.
    dynamic_dims: list[int] | None = None

    def __post_init__(self) -> None:
        _head_config(self, "ensemble_size", "hidden")
        if self.dynamic_dims is not None:
            dims = [int(d) for d in self.dynamic_dims]
            if not dims or len(set(dims)) != len(dims) or not all(
                    0 <= d < self.encoder.obs_dim for d in dims):
                raise ValueError(f"DynamicsConfig.dynamic_dims must be distinct indices in "
                                 f"[0, {self.encoder.obs_dim}), got {self.dynamic_dims!r}")
            self.dynamic_dims = dims


@dataclass
class DiscriminatorConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    hidden: int = 256

    def __post_init__(self) -> None:
        _head_config(self, "hidden")


CONFIG_TYPES: dict[str, type] = {
    "PolicyConfig": PolicyConfig,
    "DynamicsConfig": DynamicsConfig,
    "DiscriminatorConfig": DiscriminatorConfig,
    "EncoderConfig": EncoderConfig,
}


def to_dict(cfg: Any) -> dict[str, Any]:
    return {"type": type(cfg).__name__, "config": dataclasses.asdict(cfg)}


def from_dict(data: dict[str, Any]) -> Any:
    """Inverse of to_dict; unknown types or fields raise ValueError naming them."""
    kind = data.get("type")
    if kind not in CONFIG_TYPES:
        raise ValueError(f"config.type must be one of {sorted(CONFIG_TYPES)}, got {kind!r}")
    cls = CONFIG_TYPES[kind]
    try:
        return cls(**data["config"])
    except TypeError as exc:
        raise ValueError(f"config for {kind}: {exc}") from exc
