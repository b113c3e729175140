"""Behaviour cloning: the baseline to beat (docs/algorithm.md §7) and Offline-MB-ERIL's
policy warm start.

    L_BC = mse_weight * E_{D_E}|tanh(mu) - u_t|^2 - E_{D_E}[ln pi(u_t | h_t)]

(the squared error fits the mean, the likelihood the spread; mse_weight 0 is the papers'
plain maximum likelihood), over i.i.d. expert steps (mlp) or whole expert episodes (mamba).

With ``network.backbone: mamba`` h_t is the history from the episode start (Decision Mamba
tokens, Ota 2024); with ``mlp`` it is x_t alone.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from mberil_ros.algos.base import no_grad_sync
from mberil_ros.algos.common import (
    NetworkConfig,
    configure_inputs,
    generator_state,
    make_optimizer,
    nested,
    seeded,
    tanh_gaussian_sample,
)
from mberil_ros.algos.data import Batch, DataConfig, OfflineData, masked_mean
from mberil_ros.models.config import PolicyConfig, to_dict
from mberil_ros.models.heads import TanhGaussianPolicy, pre_tanh
from mberil_ros.settings import from_mapping


@dataclass
class BCConfig:
    """Behaviour cloning hyperparameters."""

    network: NetworkConfig = field(default_factory=NetworkConfig)  # policy sizes, backbone
    data: DataConfig = field(default_factory=DataConfig)  # split / normalization
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW decay (never on A_log, D, biases, norms)
    batch_size: int = 16  # expert episodes per step (whole episodes, padded): mamba backbone
    step_batch_size: int = 512  # mlp backbone: single expert steps per batch, drawn i.i.d.
    #   (an MLP reads x_t alone, so it needs no history; whole episodes give it a few
    #   correlated batches per update and fit it several times worse per second)
    lr_decay_steps: int = 0  # > 0: cosine decay of lr to 0 over this many steps (the mean
    #   action must be fitted to a fraction of a millimetre per tick near the target); 0: off
    eval_batch: int = 64  # episodes per forward in evaluate()
    grad_clip: float = 0.0  # max gradient norm (<= 0: off; the NLL of near-deterministic
    #   joints has norms in the hundreds, a clip would only add noise to Adam's steps)
    mse_weight: float = 100.0  # > 0: the mean is fitted by the squared error of the executed
    #   action tanh(mu) (per joint, in units of the expert's spread) times this weight, the
    #   spread by the NLL (ours: see bc_loss); 0: the plain NLL

    def __post_init__(self) -> None:
        nested(self, "network", NetworkConfig)
        nested(self, "data", DataConfig)
        for name in ("lr", "batch_size", "step_batch_size", "eval_batch"):
            if getattr(self, name) <= 0:
                raise ValueError(f"BCConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "mse_weight", "lr_decay_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"BCConfig.{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BCConfig:
        return from_mapping(cls, data, cls.__name__)


def build_policy(net: NetworkConfig, data: OfflineData) -> TanhGaussianPolicy:
    enc = dataclasses.replace(net.encoder(data.obs_dim, data.act_dim),
                              ignore_dims=net.policy_ignore_dims(data.state_names),
                              obstacle_gate=net.policy_obstacle_gate)
    policy = TanhGaussianPolicy(PolicyConfig(encoder=enc, hidden=net.head_hidden))
    configure_inputs(data, policy)
    return policy


def expert_batch(data: OfflineData, backbone: str, episodes: int, steps: int,
                 gen: torch.Generator) -> Batch:
    """BC's batch: whole episodes for a history encoder (some cropped to a later start:
    DataConfig.history_crop), i.i.d. steps for the MLP."""
    if backbone == "mlp":
        return data.sample_steps("expert", steps, gen)
    return data.sample("expert", episodes, gen, crop=data.cfg.history_crop)


def cosine_lr(lr: float, step: int, decay_steps: int) -> float:
    """Learning rate at ``step``: cosine from ``lr`` to 0 over ``decay_steps`` (0: ``lr``).
    A function of the step alone, so a resumed run continues the same schedule."""
    if decay_steps <= 0:
        return lr
    return 0.5 * lr * (1.0 + math.cos(math.pi * min(step, decay_steps) / decay_steps))


def set_lr(optim: torch.optim.Optimizer, lr: float) -> None:
    for group in optim.param_groups:
        group["lr"] = lr


def policy_nll(policy: TanhGaussianPolicy, batch: Batch) -> torch.Tensor:
    """-mean ln pi(u_t|h_t) over the valid steps of ``batch``."""
    return -masked_mean(policy.log_prob(batch.obs, batch.prev_act, batch.act), batch.mask)


def bc_loss(policy: TanhGaussianPolicy, batch: Batch, mse_weight: float,
            act_std: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Behaviour cloning of the expert's actions, ``mse_weight`` > 0: the mean by least
    squares, the spread by likelihood. The squared error of tanh(mu), the action the runtime
    executes, is measured per joint in units of the expert's spread ``act_std``; the NLL sees
    mu as a constant and only fits log_std. With the NLL alone every joint is weighted by its
    learned 1/sigma^2: the joints the policy is already sure of dominate and the mean of the
    others is fitted loosely, and in closed loop those errors add up (measured in
    docs/learning.md). ``mse_weight`` 0: the plain NLL of the papers."""
    mu, log_std = policy(batch.obs, batch.prev_act)
    if mse_weight <= 0:
        nll = -masked_mean(policy.log_prob_from_params(mu, log_std, batch.act), batch.mask)
        return nll, {"loss/bc_nll": float(nll.detach())}
    nll = -masked_mean(policy.log_prob_from_params(mu.detach(), log_std, batch.act),
                       batch.mask)
    err = ((torch.tanh(mu) - batch.act) / act_std).square().mean(-1)
    mse = masked_mean(err, batch.mask)
    return nll + mse_weight * mse, {"loss/bc_nll": float(nll.detach()),
                                    "loss/bc_mse": float(mse.detach())}


# |z| of a standard normal: its median, and the bound it exceeds 1 % of the time. Where the
# expert's actions look like pi's own samples, half lie within CALIBRATED_Z of pi's mean (in
# pi's sigmas) and 1 % beyond TAIL_Z
CALIBRATED_Z = 0.6745
TAIL_Z = 2.5758
# nll_pi_trim leaves out this share of the steps (at least one), the worst under pi: on unseen
# start poses a few steps thousands of nats deep decide the plain mean (docs/learning.md)
TRIM_SHARE = 0.01


def expert_z(mu: torch.Tensor, log_std: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """|atanh(a) - mu| / sigma per step and joint: where an action lies under the policy."""
    return ((pre_tanh(act) - mu) * torch.exp(-log_std)).abs()


@torch.no_grad()
def evaluate_policy_fit(policy: TanhGaussianPolicy, data: OfflineData, eval_batch: int,
                        device: torch.device) -> dict[str, float]:
    """On every step of the validation expert episodes: ``nll_pi`` (-mean ln pi);
    ``nll_pi_trim``, the same without the worst TRIM_SHARE of the steps; ``pi_expert_z``
    (median over steps and joints of expert_z; CALIBRATED_Z when the expert's actions are
    distributed like pi's samples, larger when pi is over-confident); ``pi_expert_tail``
    (the share beyond TAIL_Z; 0.01 when calibrated). Where the expert's actions look like
    pi's samples, no discriminator can tell them apart."""
    nlls, zs = [], []
    was_training = policy.training
    policy.eval()
    for b in data.batches("expert", eval_batch):
        b = b.to(device)
        mu, log_std = policy(b.obs, b.prev_act)
        nlls.append(-policy.log_prob_from_params(mu, log_std, b.act)[b.mask].cpu())
        zs.append(expert_z(mu, log_std, b.act)[b.mask].flatten().cpu())
    policy.train(was_training)
    nll = torch.cat(nlls) if nlls else torch.zeros(1)  # as before: 0.0 with no expert step
    z = torch.cat(zs) if zs else torch.full((1,), float("nan"))
    kept = nll.sort().values[:max(1, nll.numel() - math.ceil(TRIM_SHARE * nll.numel()))]
    return {"nll_pi": float(nll.double().mean()), "nll_pi_trim": float(kept.double().mean()),
            "pi_expert_z": float(z.median()), "pi_expert_tail": float((z > TAIL_Z).float().mean())}


@torch.no_grad()
def evaluate_closed_loop_nll(policy: TanhGaussianPolicy, data: OfflineData, eval_batch: int,
                             device: torch.device, seed: int = 0) -> float:
    """NLL_pi of the validation expert actions with the policy fed its OWN previous actions:
    the previous-action token of step t is built from the action the policy sampled at t-1
    (states stay the expert's). The plain NLL_pi feeds the expert's previous commands, which
    rewards copying them; this one does not. Equal to NLL_pi with ``policy_inputs: state``.
    A local generator keeps the algorithm's own random stream (and bit-exact resume) intact."""
    gen = torch.Generator().manual_seed(seed)
    total, steps = 0.0, 0
    was_training = policy.training
    policy.eval()
    for b in data.batches("expert", eval_batch):
        b = b.to(device)
        state = policy.encoder.init_state(b.obs.shape[0])
        prev = b.prev_act[:, 0]
        for t in range(b.obs.shape[1]):
            mu, log_std = policy.dist_params(policy.encoder.step(b.obs[:, t], prev, state))
            logp = policy.log_prob_from_params(mu, log_std, b.act[:, t])
            total += float((logp * b.mask[:, t]).sum())
            steps += int(b.mask[:, t].sum())
            u, _ = tanh_gaussian_sample(mu, log_std, gen)
            prev = data.codec.torch_next_lead(b.obs[:, t], prev, u, b.next_obs[:, t])
    policy.train(was_training)
    return -total / max(steps, 1)


def export_config(policy: TanhGaussianPolicy, data: OfflineData, algorithm: str
                  ) -> dict[str, Any]:
    enc = policy.cfg.encoder
    return {"algorithm": algorithm, "model": to_dict(policy.cfg), "backbone": enc.backbone,
            "context": enc.context, **data.policy_config()}


class BC:
    """``BC(config, data, device, seed)``: the Algorithm protocol (algos/base.py)."""

    def __init__(self, config: BCConfig, data: OfflineData, device: str | torch.device = "cpu",
                 seed: int = 0) -> None:
        self.cfg, self.data, self.device = config, data, torch.device(device)
        if data.val.count("expert") == 0:
            raise ValueError(f"data.val_fraction: dataset {data.name} has no held-out expert "
                             "episode for evaluate()")
        with seeded(seed):
            self.policy = build_policy(config.network, data).to(self.device)
        self.optim = make_optimizer([self.policy], config.lr, config.weight_decay)
        self.gen = torch.Generator().manual_seed(seed)
        self.grad_sync = no_grad_sync

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.policy}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"policy": self.optim}

    def train_step(self, step: int) -> dict[str, float]:
        set_lr(self.optim, cosine_lr(self.cfg.lr, step, self.cfg.lr_decay_steps))
        batch = expert_batch(self.data, self.cfg.network.backbone, self.cfg.batch_size,
                             self.cfg.step_batch_size, self.gen).to(self.device)
        loss, out = bc_loss(self.policy, batch, self.cfg.mse_weight,
                            self.data.act_std.to(self.device))
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.grad_sync(self.policy.parameters())
        out["loss/bc"] = float(loss.detach())
        if self.cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.grad_clip)
            out["grad_norm/policy"] = float(norm)
        self.optim.step()
        return out

    def evaluate(self) -> dict[str, float]:
        args = (self.policy, self.data, self.cfg.eval_batch, self.device)
        return {**evaluate_policy_fit(*args),
                "nll_pi_closed_loop": evaluate_closed_loop_nll(*args)}

    def state(self) -> dict[str, Any]:
        return {"generator": generator_state(self.gen)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["generator"])

    def export_policy(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        return self.policy, export_config(self.policy, self.data, "bc")
