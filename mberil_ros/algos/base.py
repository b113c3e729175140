"""The contract between an algorithm (offline_mberil.py, bc.py) and the training runner.

The runner (run folders, checkpoints, resume, logging, distributed training) never looks
inside an algorithm; an algorithm never writes files or talks to torch.distributed. Both
sides meet here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch


def no_grad_sync(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Single-process training: gradients need no averaging."""


class Algorithm(Protocol):
    """What the runner needs from an algorithm.

    Construction (not part of the protocol): ``Algo(config, data, device, seed)`` where
    ``data`` is the training data pipeline and ``seed`` already includes the process rank.
    """

    #: Set by the runner before training. Call it on a component's parameters after
    #: ``backward()`` and before ``optimizer.step()``; under DDP it averages gradients across
    #: ranks, so every rank takes the same step.
    grad_sync: Callable[[Iterable[torch.nn.Parameter]], None]

    def modules(self) -> dict[str, torch.nn.Module]:
        """Every module with weights (policy, model, discriminator, baselines...), by a
        stable name; model.safetensors stores them as ``{name}.{parameter}``."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer (and scheduler-free state) by a stable name."""

    def train_step(self, step: int) -> dict[str, float]:
        """One training iteration (draws its own batch); returns scalars to log."""

    def evaluate(self) -> dict[str, float]:
        """Held-out metrics; ``nll_pi`` always, ``nll_m`` when there is a model."""

    def state(self) -> dict[str, Any]:
        """Everything else a bit-exact resume needs (sampler RNG, rollout buffer, warm-start
        progress...): tensors, numbers, strings, lists and dicts only (no pickled objects)."""

    def load_state(self, state: dict[str, Any]) -> None: ...

    def export_policy(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        """The deployable policy and its policy_config.json content (model config, obs/act
        layout, joint names, context length): enough, with normalization.json, to act."""
