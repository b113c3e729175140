"""Save / load models as safetensors weights plus a JSON config (never pickle).

The state_dict holds only parameters and buffers named as in mamba_ssm, so a file written from
the CUDA fast path loads on CPU (portable path) and back.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mberil_ros.models import config as C
from mberil_ros.models.heads import Discriminator, GaussianEnsembleDynamics, TanhGaussianPolicy

MODEL_TYPES: dict[type, type[nn.Module]] = {
    C.PolicyConfig: TanhGaussianPolicy,
    C.DynamicsConfig: GaussianEnsembleDynamics,
    C.DiscriminatorConfig: Discriminator,
}


def build_model(cfg: C.PolicyConfig | C.DynamicsConfig | C.DiscriminatorConfig) -> nn.Module:
    if type(cfg) not in MODEL_TYPES:
        raise ValueError(f"cfg: no model for config type {type(cfg).__name__}")
    return MODEL_TYPES[type(cfg)](cfg)


def save_model(model: nn.Module, weights_path: str | Path, config_path: str | Path) -> None:
    """Write `model.state_dict()` (moved to CPU, contiguous) and `model.cfg` as JSON."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    Path(weights_path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(weights_path))
    Path(config_path).write_text(json.dumps(C.to_dict(model.cfg), indent=2))


def load_model(weights_path: str | Path, config_path: str | Path,
               device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model from its JSON config and load the weights (strict: every key)."""
    try:
        data = json.loads(Path(config_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"config_path {config_path}: {exc}") from exc
    model = build_model(C.from_dict(data))
    model.load_state_dict(load_file(str(weights_path), device="cpu"), strict=True)
    return model.to(device)
