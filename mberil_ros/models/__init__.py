"""Sequence models: Mamba backbone (CUDA fast path + portable CPU path), encoders, heads."""

from mberil_ros.models.config import (
    DiscriminatorConfig,
    DynamicsConfig,
    EncoderConfig,
    MambaConfig,
    PolicyConfig,
)
from mberil_ros.models.encoder import EncoderState, SequenceEncoder
from mberil_ros.models.heads import Discriminator, GaussianEnsembleDynamics, TanhGaussianPolicy
from mberil_ros.models.mamba import Mamba, mamba_ssm_available
from mberil_ros.models.selective_scan import selective_scan, selective_scan_torch

__all__ = [
    "DiscriminatorConfig", "DynamicsConfig", "EncoderConfig", "MambaConfig", "PolicyConfig",
    "EncoderState", "SequenceEncoder", "Discriminator", "GaussianEnsembleDynamics",
    "TanhGaussianPolicy", "Mamba",
    "mamba_ssm_available", "selective_scan", "selective_scan_torch",
]
