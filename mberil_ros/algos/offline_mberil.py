"""Offline-MB-ERIL: model-based adversarial imitation with entropy-regularized policy AND
model, trained from expert plus unlabeled sub-optimal demonstrations, no environment.

Sources: E. Uchibe, "Model-Based Imitation Learning Using Entropy Regularization of Model and
Policy" (RA-L 2022); E. Uchibe, "Offline Model-Based Imitation Learning with Entropy
Regularization of Model and Policy" (2023); E. Uchibe & K. Doya, ERIL (Neural Networks 2021);
R. Kiryo et al., nnPU (NeurIPS 2017); T. Ota, Decision Mamba (2024) for the history tokens.
Equations and our own choices: docs/algorithm.md §3-§7 (the loop below is §6).

Each train_step(), after the warm start (pi <- BC on D_E, p <- MLE on D_E u D_S):
  1 roll pi in p for H steps from real history prefixes        -> FIFO D_G
  2 discriminator: PU loss on logit_pi (D_E +, D_S unlabeled, D_G -) + logistic loss on
    logit_m (real transitions + vs counterfactual y^ ~ p -); pi and p only as constants
  3 policy: L_actor;  4 model: L_model (with the NLL anchor); r/V/Q frozen
  5 baselines b, q <- Polyak averages of pi, p (or uniform / frozen warm-start copies)

Sequence details (backbone mamba): all sequences start at the episode start. V(y) of a real
next state is V at step t+1 of the sequence extended by one token (x_0, y_0, y_1, ...). V of a
counterfactual y^_t replaces token t+1 by y^_t in that extended sequence: the causal encoder
then reads exactly h_t followed by y^_t. One such position per sequence and step (drawn from
the algorithm's generator) keeps this at one extra encoder pass.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mberil_ros.algos import losses as L
from mberil_ros.algos.actor_signal import actor_signal
from mberil_ros.algos.base import no_grad_sync
from mberil_ros.algos.bc import (
    bc_loss,
    build_policy,
    cosine_lr,
    evaluate_closed_loop_nll,
    evaluate_policy_fit,
    expert_batch,
    export_config,
    set_lr,
)
from mberil_ros.algos.common import (
    NetworkConfig,
    clone_frozen,
    configure_inputs,
    frozen,
    generator_state,
    make_optimizer,
    nested,
    polyak,
    randn,
    seeded,
    tanh_gaussian_sample,
)
from mberil_ros.algos.data import Batch, DataConfig, OfflineData, extend, masked_mean
from mberil_ros.algos.rollout_fifo import RolloutFIFO
from mberil_ros.errors import UserError
from mberil_ros.models.config import DiscriminatorConfig, DynamicsConfig
from mberil_ros.models.heads import (
    Discriminator,
    GaussianEnsembleDynamics,
    UnstructuredDiscriminator,
    gaussian_log_prob,
    mixture_log_prob,
    mixture_log_prob_per_dim,
)
from mberil_ros.settings import from_mapping

DISCRIMINATORS = ("structured", "unstructured")
BASELINES = ("polyak", "uniform", "mle")


@dataclass
class OfflineMBERILConfig:
    """Every hyperparameter of Offline-MB-ERIL (docs/algorithm.md names in brackets)."""

    network: NetworkConfig = field(default_factory=NetworkConfig)  # backbone + sizes, all nets
    data: DataConfig = field(default_factory=DataConfig)  # split / normalization / seq length
    discriminator: str = "structured"  # structured: logits from r, V, Q (§4); unstructured:
    #   free networks f_pi(h,u), f_m(h,u,y-x) in place of the logits (ablation)
    alpha: float | None = None  # PU class prior [alpha]; None: the dataset's true mixing ratio
    #   (expert-demonstrator share of the sub-optimal frames) when known, else alpha_unknown
    alpha_unknown: float = 0.0  # alpha when None and the mixing ratio is unknown (0 = naive)
    beta_pi: float = 0.95  # [beta_pi] = kappa eta / (kappa + eta) of the policy
    eta_pi: float = 1.0  # [eta_pi] inverse KL weight to the baseline policy b
    beta_m: float = 0.5  # [beta_m] of the model
    eta_m: float = 1.0  # [eta_m] inverse KL weight to the baseline model q
    gamma: float = 0.99  # discount [gamma]
    baseline: str = "polyak"  # b, q: polyak averages | uniform (ln b = -d ln 2, ln q = 0) |
    #   mle (frozen copies of the warm-started pi and p)
    polyak_tau: float = 0.005  # b <- (1 - tau) b + tau pi per iteration
    baseline_log_std_min: float | None = None  # floor on ln sigma of b in the policy's KL
    #   term (null: b as it is). A BC-sharp b (sigma ~e^-4.5) pins the policy's mean to its
    #   own; a floor turns that pin into a regularizer (docs/learning.md)
    logit_uniform_mix: float = 0.0  # eps: the policy discriminator's logit reads ln pi and
    #   ln b as densities of (1 - eps) pi + eps U(-1, 1)^d (ours; 0 = the paper's). A BC-sharp
    #   pi gives off-support actions (sub-optimal data) ln pi ~ -1e4, so a lagging b leaves
    #   logits of thousands that Q cannot move and that saturate the PU loss; the mixture
    #   bounds them near ln eps (docs/learning.md)
    disc_real_negatives: bool = False  # the policy discriminator's generated samples also
    #   include pi's own actions on the expert batch's states (ours): Q then has to rank the
    #   expert's action above pi's on the same state (docs/learning.md)
    horizon: int = 5  # H, model rollout length in control ticks (1..100; 50 Hz: 10 = 0.2 s)
    lambda_nll: float = 10.0  # [lambda_NLL] weight of the real-data NLL anchor in L_model;
    #   at 1 the model's entropy term wins: 100 iterations undo 7 nats of its fit
    #   (docs/learning.md, "The model's NLL anchor")
    bc_mse_weight: float = 100.0  # BC's squared-error term (BCConfig.mse_weight) in the warm
    #   start and in the anchor below
    lambda_bc: float = 1.0  # weight of a BC anchor on expert steps in the actor loss: BC's
    #   loss (bc_mse_weight x squared error of tanh(mu) + -ln pi for the spread; ours, not in
    #   the papers: the policy's counterpart of lambda_NLL, keeps the adversarial phase from
    #   drifting off the warm start while the discriminator is weak)
    ensemble_size: int = 5  # E, dynamics ensemble members
    lr_bc: float = 1e-3  # policy learning rate in the BC warm start, cosine-decayed to 0
    #   over bc_warmstart_steps (as BCConfig.lr with lr_decay_steps)
    step_batch_size: int = 512  # mlp backbone: i.i.d. expert steps per BC batch (warm start
    #   and anchor), as BCConfig.step_batch_size
    lr_policy: float = 1e-4  # AdamW learning rates (policy: the adversarial phase; small, so
    #   that it starts from the warm start instead of undoing it: docs/learning.md)
    lr_model: float = 3e-4
    lr_disc: float = 3e-4
    weight_decay: float = 0.0  # AdamW decay (never on A_log, D, biases, norms)
    batch_size: int = 16  # episodes (whole, padded) per batch and data source
    rollout_batch: int = 16  # rollouts started per iteration
    bc_warmstart_steps: int = 3000  # BC steps on D_E before the adversarial loop (what makes
    #   the policy reach: docs/learning.md, "The default configs")
    init_policy: str | None = None  # a BC checkpoint (or run folder) to start the policy
    #   from instead of the BC warm start (same network, dataset and data settings; its
    #   normalization must match); bc_warmstart_steps is then skipped
    model_warmstart_steps: int = 1000  # MLE steps on D_E u D_S before the adversarial loop
    #   (taken beside the first BC steps; docs/learning.md, "The dynamics model's budget")
    disc_steps: int = 1  # discriminator steps per iteration
    policy_steps: int = 1  # policy steps per iteration
    model_steps: int = 1  # model steps per iteration
    fifo_size: int = 256  # D_G capacity in rollout sequences (oldest dropped first)
    eval_batch: int = 64  # episodes per forward in evaluate()
    grad_clip: float = 10.0  # max gradient norm per component (<= 0: off)

    def __post_init__(self) -> None:
        nested(self, "network", NetworkConfig)
        nested(self, "data", DataConfig)
        name = type(self).__name__
        def bad(field_name: str, what: str) -> None:
            raise ValueError(f"{name}.{field_name} must be {what}, got "
                             f"{getattr(self, field_name)!r}")
        if self.discriminator not in DISCRIMINATORS:
            bad("discriminator", f"one of {DISCRIMINATORS}")
        if self.baseline not in BASELINES:
            bad("baseline", f"one of {BASELINES}")
        if self.alpha is not None and not 0.0 <= self.alpha < 1.0:
            bad("alpha", "in [0, 1) or null")
        if not 0.0 <= self.alpha_unknown < 1.0:
            bad("alpha_unknown", "in [0, 1)")
        for f in ("beta_pi", "eta_pi", "beta_m", "eta_m", "lr_bc", "lr_policy", "lr_model",
                  "lr_disc"):
            if not getattr(self, f) > 0:
                bad(f, "> 0")
        if not 0.0 <= self.gamma <= 1.0:
            bad("gamma", "in [0, 1]")
        if not 0.0 <= self.logit_uniform_mix < 1.0:
            bad("logit_uniform_mix", "in [0, 1)")
        if not 0.0 < self.polyak_tau <= 1.0:
            bad("polyak_tau", "in (0, 1]")
        if not (isinstance(self.horizon, int) and 1 <= self.horizon <= 100):
            bad("horizon", "an int in 1..100")
        for f in ("lambda_nll", "lambda_bc", "bc_mse_weight"):
            if getattr(self, f) < 0:
                bad(f, ">= 0")
        if self.weight_decay < 0:
            bad("weight_decay", ">= 0")
        for f in ("ensemble_size", "batch_size", "step_batch_size", "rollout_batch",
                  "disc_steps", "policy_steps", "model_steps", "fifo_size", "eval_batch"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(f, "a positive int")
        for f in ("bc_warmstart_steps", "model_warmstart_steps"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                bad(f, "an int >= 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OfflineMBERILConfig:
        return from_mapping(cls, data, cls.__name__)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class OfflineMBERIL:
    """``OfflineMBERIL(config, data, device, seed)``: the Algorithm protocol (algos/base.py)."""

    def __init__(self, config: OfflineMBERILConfig, data: OfflineData,
                 device: str | torch.device = "cpu", seed: int = 0) -> None:
        self.cfg, self.data, self.device = config, data, torch.device(device)
        c = config
        self.has_unlabeled = data.train.count("suboptimal") > 0
        if c.alpha is not None:
            self.alpha = c.alpha
        else:
            self.alpha = data.mixing_ratio if data.mixing_ratio is not None else c.alpha_unknown
        if self.alpha > 0 and not self.has_unlabeled:
            raise ValueError(f"alpha: {self.alpha} > 0 needs sub-optimal (unlabeled) episodes, "
                             f"but dataset {data.name} has none in its training split")
        if data.val.count("expert") == 0:
            raise ValueError(f"data.val_fraction: dataset {data.name} has no held-out expert "
                             "episode for evaluate()")
        self.pu = L.PUDiscriminatorLoss(self.alpha)
        net = c.network
        enc = net.encoder(data.obs_dim, data.act_dim)
        dcfg = DiscriminatorConfig(encoder=enc, hidden=net.head_hidden)
        with seeded(seed):
            self.policy = build_policy(net, data).to(self.device)
            self.model = GaussianEnsembleDynamics(DynamicsConfig(
                encoder=enc, ensemble_size=c.ensemble_size, hidden=net.head_hidden,
                dynamic_dims=data.dynamic_dims))
            if c.discriminator == "structured":
                self.disc = Discriminator(dcfg)
            else:
                self.disc = UnstructuredDiscriminator(dcfg, len(data.dynamic_dims))
        configure_inputs(data, self.model, self.disc)
        self.model, self.disc = self.model.to(self.device), self.disc.to(self.device)
        self.policy_base = self.model_base = None
        if c.baseline != "uniform":
            self.policy_base = clone_frozen(self.policy)
            self.model_base = clone_frozen(self.model)
        self.opt = {
            "policy": make_optimizer([self.policy], c.lr_policy, c.weight_decay),
            "model": make_optimizer([self.model], c.lr_model, c.weight_decay),
            "disc": make_optimizer([self.disc], c.lr_disc, c.weight_decay),
        }
        self.gen = torch.Generator().manual_seed(seed)
        t_max = data.train.obs.shape[1] + c.horizon + 1
        self.fifo = RolloutFIFO(c.fifo_size, t_max, data.obs_dim, data.act_dim)
        self.bc_done = self.mle_done = 0
        if c.init_policy:
            self._load_initial_policy(c.init_policy)
        self.grad_sync = no_grad_sync

    def _load_initial_policy(self, path: str) -> None:
        """The policy (and its baseline) from a trained checkpoint: the warm start is done."""
        from pathlib import Path

        from mberil_ros.algos import checkpoint as ckpt

        folder = ckpt.resolve(Path(path))
        norm = json.loads((folder / ckpt.NORMALIZATION).read_text())
        if norm != json.loads(json.dumps(self.data.codec.to_dict())):
            raise UserError(f"algo.init_policy: {folder} was trained with another "
                            "normalization (dataset, split or data settings differ)")
        weights = {k: v for k, v in ckpt.load_weights(folder).items()
                   if k.startswith("policy.")}
        ckpt.load_modules({"policy": self.policy}, weights, folder)
        if self.policy_base is not None:  # the warm start may be over already (no MLE steps)
            self.policy_base.load_state_dict(self.policy.state_dict())
        self.bc_done = self.cfg.bc_warmstart_steps

    # ---- protocol ------------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        out = {"policy": self.policy, "model": self.model, "disc": self.disc}
        if self.policy_base is not None:
            out.update(policy_base=self.policy_base, model_base=self.model_base)
        return out

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self.opt)

    def state(self) -> dict[str, Any]:
        return {"generator": generator_state(self.gen), "bc_done": self.bc_done,
                "mle_done": self.mle_done, "fifo": self.fifo.state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["generator"])
        self.bc_done, self.mle_done = int(state["bc_done"]), int(state["mle_done"])
        self.fifo.load_state(state["fifo"])

    def export_policy(self) -> tuple[nn.Module, dict[str, Any]]:
        return self.policy, export_config(self.policy, self.data, "offline_mberil")

    @property
    def warm(self) -> bool:
        return (self.bc_done >= self.cfg.bc_warmstart_steps
                and self.mle_done >= self.cfg.model_warmstart_steps)

    @property
    def warmstart_remaining(self) -> int:
        """Training steps before the first adversarial iteration (BC and MLE run side by side)."""
        return max(self.cfg.bc_warmstart_steps - self.bc_done,
                   self.cfg.model_warmstart_steps - self.mle_done, 0)

    def train_step(self, step: int) -> dict[str, float]:
        if not self.warm:
            return self.warmstart_step()
        out: dict[str, float] = {}
        out.update(self.rollout())
        for _ in range(self.cfg.disc_steps):
            out.update(self.discriminator_step())
        for _ in range(self.cfg.policy_steps):
            out.update(self.policy_step())
        for _ in range(self.cfg.model_steps):
            out.update(self.model_step())
        if self.cfg.baseline == "polyak":
            polyak(self.policy_base, self.policy, self.cfg.polyak_tau)
            polyak(self.model_base, self.model, self.cfg.polyak_tau)
        return out

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        args = (self.policy, self.data, self.cfg.eval_batch, self.device)
        out = {**evaluate_policy_fit(*args),
               "nll_pi_closed_loop": evaluate_closed_loop_nll(*args)}
        # NLL_m over the dims the model predicts (joint positions and velocities), in total,
        # per label and per dim (the mixture's marginals)
        sums: dict[str, list[float]] = {"expert": [0.0, 0], "suboptimal": [0.0, 0]}
        per_dim = torch.zeros(len(self.model.dims))
        for b in self.data.batches("all", self.cfg.eval_batch):
            b = b.to(self.device)
            mu, ls = self.model(b.obs, b.prev_act, b.act)
            delta = self.model.delta(b.obs, b.next_obs)
            lp = mixture_log_prob(mu, ls, delta)
            per_dim += (mixture_log_prob_per_dim(mu, ls, delta)
                        * b.mask[..., None]).sum((0, 1)).cpu()
            for label, rows in (("expert", b.expert), ("suboptimal", ~b.expert)):
                m = b.mask & rows[:, None]
                sums[label][0] += float((lp * m).sum())
                sums[label][1] += int(m.sum())
        steps = max(sums["expert"][1] + sums["suboptimal"][1], 1)
        out["nll_m"] = -(sums["expert"][0] + sums["suboptimal"][0]) / steps
        for label, (s, n) in sums.items():
            if n:
                out[f"nll_m_{label}"] = -s / n
        names = self.data.state_names
        for d, v in zip(self.model.dims, per_dim.tolist(), strict=True):
            out[f"nll_m_dim/{names[d]}"] = -v / steps
        if self.fifo.count:  # rollouts ran, so the discriminator has trained: measure it
            out.update(self.actor_signal())
        return out

    def actor_signal(self) -> dict[str, float]:
        """Direction and reach of the discriminator's push on the policy, over the held-out
        expert episodes (algos/actor_signal.py)."""
        return actor_signal(
            self.policy, self._actor_score, self.data.batches("expert", self.cfg.eval_batch),
            self.device, self.cfg.eta_pi, self.policy_base, self.cfg.baseline_log_std_min)

    def _actor_score(self, b: Batch, u: torch.Tensor) -> torch.Tensor:
        """What the actor maximizes besides its entropy terms: Q (structured) or f_pi."""
        with torch.no_grad():
            lat = self.disc.encoder(b.obs, b.prev_act)
        if self.cfg.discriminator == "structured":
            return self.disc.Q(lat, u)
        return self.disc.f_pi(lat, u)

    # ---- warm start ------------------------------------------------------------------------------
    def _step(self, name: str, module: nn.Module, loss: torch.Tensor, out: dict[str, float]
              ) -> None:
        opt = self.opt[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.grad_sync(module.parameters())
        if self.cfg.grad_clip > 0:
            norm = nn.utils.clip_grad_norm_(module.parameters(), self.cfg.grad_clip)
            out[f"grad_norm/{name}"] = float(norm)
        opt.step()

    def warmstart_step(self) -> dict[str, float]:
        """One BC step on D_E and one MLE step on D_E u D_S, until each has its count."""
        out: dict[str, float] = {}
        if self.bc_done < self.cfg.bc_warmstart_steps:
            set_lr(self.opt["policy"], cosine_lr(self.cfg.lr_bc, self.bc_done,
                                                 self.cfg.bc_warmstart_steps))
            loss, parts = self._bc(self._expert_bc_batch())
            self._step("policy", self.policy, loss, out)
            out.update(parts)
            out["loss/bc"] = float(loss.detach())
            self.bc_done += 1
        if self.mle_done < self.cfg.model_warmstart_steps:
            loss = self._model_nll(self._sample("all"))
            self._step("model", self.model, loss, out)
            out["loss/model_mle"] = float(loss.detach())
            self.mle_done += 1
        if self.warm:
            set_lr(self.opt["policy"], self.cfg.lr_policy)
        if self.warm and self.policy_base is not None:
            # the baselines start from the warm-started networks (and stay there for "mle")
            self.policy_base.load_state_dict(self.policy.state_dict())
            self.model_base.load_state_dict(self.model.state_dict())
        return out

    def _bc(self, b: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        return bc_loss(self.policy, b, self.cfg.bc_mse_weight, self.data.act_std.to(self.device))

    def _expert_bc_batch(self) -> Batch:
        c = self.cfg
        return expert_batch(self.data, c.network.backbone, c.batch_size, c.step_batch_size,
                            self.gen).to(self.device)

    def _sample(self, label: str) -> Batch:
        return self.data.sample(label, self.cfg.batch_size, self.gen).to(self.device)

    def _model_nll(self, b: Batch, params: tuple[torch.Tensor, torch.Tensor] | None = None
                   ) -> torch.Tensor:
        """Ensemble MLE: every member's -ln p(y|h,u), averaged over members and valid steps.
        ``params``: the model's (mu, log_std) on ``b`` when already computed."""
        mu, ls = params if params is not None else self.model(b.obs, b.prev_act, b.act)
        lp = gaussian_log_prob(self.model.delta(b.obs, b.next_obs), mu, ls)
        return -masked_mean(lp, b.mask.expand_as(lp))

    # ---- 1: rollouts -----------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self) -> dict[str, float]:
        """Roll pi in p for H steps from a real prefix x_0..x_{t0} (t0 uniform per episode)
        and push the sequences to D_G. The prefixes go through each encoder in one parallel
        pass that stops every row at its own t0 (SequenceEncoder.prefix_state); only the H
        model steps are recurrent, so the cost no longer grows with the episode length."""
        H = self.cfg.horizon
        b = self.data.sample("all", self.cfg.rollout_batch, self.gen).to(self.device)
        n = b.mask.shape[0]
        length = b.mask.sum(1)
        t0 = (torch.rand(n, generator=self.gen) * length.cpu()).long().to(self.device)
        rows = torch.arange(n, device=self.device)
        obs, act, prevs, gen_mask = self._real_prefixes(b, t0)
        # tokens 0..t0 of each row are its real history: x_0, y_0, .. with their prev tokens
        obs_ext, prev_ext = extend(b)
        span = int(t0.max()) + 1
        lat_p, ps = self.policy.encoder.prefix_state(obs_ext[:, :span], prev_ext[:, :span],
                                                     t0 + 1)
        lat_m, ms = self.model.encoder.prefix_state(obs_ext[:, :span], prev_ext[:, :span],
                                                    t0 + 1)
        lat_p, lat_m = lat_p[rows, t0], lat_m[rows, t0]
        x, prev = obs_ext[rows, t0], prev_ext[rows, t0]  # token t0: already encoded
        for j in range(H):
            if j > 0:  # one recurrent step per generated token
                lat_p = self.policy.encoder.step(x, prev, ps)
                lat_m = self.model.encoder.step(x, prev, ms)
            u, _ = tanh_gaussian_sample(*self.policy.dist_params(lat_p), self.gen)
            mu, ls = self.model.heads(lat_m, u)
            member = torch.randint(mu.shape[0], (n,), generator=self.gen).to(self.device)
            mu, ls = mu[member, rows], ls[member, rows]
            y = self.model.compose(x, mu + torch.exp(ls) * randn(self.gen, mu.shape, mu))
            # the next token: this command minus the next state's joint positions
            nxt = self.data.codec.torch_next_lead(x, prev, u, y)
            k = t0 + j  # this row's step: u_k, then x_{k+1} = y
            act[rows, k], obs[rows, k + 1], gen_mask[rows, k + 1] = u, y, True
            prevs[rows, k + 1] = nxt
            x, prev = y, nxt
        self.fifo.add(obs.cpu(), prevs.cpu(), gen_mask.cpu(), (t0 + H + 1).cpu())
        g = obs[gen_mask]
        return {"rollout/state_abs_max": float(g.abs().max()), "rollout/fifo": self.fifo.count}

    def _real_prefixes(self, b: Batch, t0: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rollout buffers of t0.max() + H + 1 steps, holding each row's real x_0..x_{t0},
        their previous-action tokens and u_0..u_{t0-1} (zeros elsewhere), and the all-False
        mask of generated states."""
        n, t_out = t0.shape[0], int(t0.max()) + self.cfg.horizon + 1
        obs = b.obs.new_zeros(n, t_out, b.obs.shape[-1])
        act = b.act.new_zeros(n, t_out, b.act.shape[-1])
        prevs = torch.zeros_like(act)
        span = int(t0.max()) + 1
        pos = torch.arange(span, device=self.device)[None, :]
        obs_ext, prev_ext = (t[:, :span] for t in extend(b))
        real = (pos <= t0[:, None])[..., None]
        obs[:, :span], prevs[:, :span] = obs_ext * real, prev_ext * real
        act[:, :span - 1] = b.act[:, :span - 1] * (pos[:, :-1] < t0[:, None])[..., None]
        return obs, act, prevs, torch.zeros(n, t_out, dtype=torch.bool, device=self.device)

    def _generated(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        obs, prev, gen = self.fifo.sample(self.cfg.batch_size, self.gen)
        return obs.to(self.device), prev.to(self.device), gen.to(self.device)

    # ---- shared pieces -----------------------------------------------------------------------
    def _log_b(self, obs: torch.Tensor, prev: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """ln b(u|h): baseline params are constants, the gradient reaches u."""
        if self.policy_base is None:  # uniform on (-1, 1)^d
            return torch.full(u.shape[:-1], -u.shape[-1] * math.log(2.0), device=u.device)
        with torch.no_grad():
            mu, ls = self.policy_base(obs, prev)
            if self.cfg.baseline_log_std_min is not None:
                ls = ls.clamp(min=self.cfg.baseline_log_std_min)
        return self.policy_base.log_prob_from_params(mu, ls, u)

    def _log_q(self, mu_q: torch.Tensor | None, ls_q: torch.Tensor | None, obs: torch.Tensor,
               y: torch.Tensor) -> torch.Tensor:
        if mu_q is None:  # "uniform" model baseline: an improper constant, ln q = 0
            return torch.zeros(y.shape[:-1], device=y.device)
        return mixture_log_prob(mu_q, ls_q, self.model.delta(obs, y))

    def _policy_logit(self, obs: torch.Tensor, prev: torch.Tensor, u: torch.Tensor,
                      log_pi: torch.Tensor | None = None) -> torch.Tensor:
        """logit_pi at every step (discriminator step: pi and b enter as constants).
        ``log_pi``: ln pi(u|h) when already known."""
        lat = self.disc.encoder(obs, prev)
        if self.cfg.discriminator == "unstructured":
            return self.disc.f_pi(lat, u)
        with torch.no_grad():
            if log_pi is None:
                log_pi = self.policy.log_prob(obs, prev, u)
            log_b = self._log_b(obs, prev, u)
            eps, d = self.cfg.logit_uniform_mix, u.shape[-1]
            log_pi, log_b = L.mix_uniform(log_pi, eps, d), L.mix_uniform(log_b, eps, d)
        return L.structured_policy_logit(self.disc.Q(lat, u), self.disc.V(lat), log_b, log_pi,
                                         self.cfg.beta_pi, self.cfg.eta_pi)

    def _counterfactual(self, b: Batch, reparam: bool,
                        params: tuple[torch.Tensor, torch.Tensor] | None = None,
                        base: tuple[torch.Tensor, torch.Tensor] | None = None
                        ) -> dict[str, torch.Tensor]:
        """y^ ~ p(.|h_t,u_t) at one random valid step t per sequence, with ln p(y^), ln q(y^).
        ``params`` / ``base``: the model's / the model baseline's (mu, log_std) on ``b`` when
        the caller already has them (one encoder pass each instead of two)."""
        n = b.obs.shape[0]
        rows = torch.arange(n, device=self.device)
        t = (torch.rand(n, generator=self.gen) * b.mask.sum(1).cpu()).long().to(self.device)
        member = torch.randint(self.cfg.ensemble_size, (n,), generator=self.gen).to(self.device)
        eps = randn(self.gen, (n, len(self.model.dims)), b.obs)
        with torch.set_grad_enabled(reparam and torch.is_grad_enabled()):
            mu, ls = params if params is not None else self.model(b.obs, b.prev_act, b.act)
            mu_t, ls_t = mu[:, rows, t], ls[:, rows, t]  # (E, n, D)
            x_t = b.obs[rows, t]
            y = self.model.compose(x_t, mu_t[member, rows] + torch.exp(ls_t[member, rows]) * eps)
            if not reparam:
                y = y.detach()
            log_p = mixture_log_prob(mu_t, ls_t, self.model.delta(x_t, y))
        with torch.no_grad():
            mq, lq = (base if base is not None
                      else self.model_base(b.obs, b.prev_act, b.act) if self.model_base is not None
                      else (None, None))
        log_q = self._log_q(None if mq is None else mq[:, rows, t],
                            None if lq is None else lq[:, rows, t], x_t, y)
        return {"t": t, "rows": rows, "x": x_t, "y": y, "log_p": log_p, "log_q": log_q}

    def _v_of(self, b: Batch, cf: dict[str, torch.Tensor]) -> torch.Tensor:
        """V(h_t followed by y^_t): token t+1 of the extended sequence replaced by y^."""
        obs_ext, prev_ext = extend(b)
        obs_ext, prev_ext = obs_ext.clone(), prev_ext.clone()
        rows, t = cf["rows"], cf["t"]
        obs_ext[rows, t + 1] = cf["y"]
        # the token that goes with y^: the same command minus y^'s joint positions
        prev_ext[rows, t + 1] = self.data.codec.torch_next_lead(
            b.obs[rows, t], b.prev_act[rows, t], b.act[rows, t], cf["y"])
        lat = self.disc.encoder(obs_ext, prev_ext)
        return self.disc.V(lat[cf["rows"], cf["t"] + 1])

    # ---- 2: discriminator --------------------------------------------------------------------
    def discriminator_step(self) -> dict[str, float]:
        c = self.cfg
        e = self._sample("expert")
        z_e = self._policy_logit(e.obs, e.prev_act, e.act)[e.mask]
        z_s = None
        if self.has_unlabeled:
            s = self._sample("suboptimal")
            z_s = self._policy_logit(s.obs, s.prev_act, s.act)[s.mask]
        g_obs, g_prev, g_mask = self._generated()
        with torch.no_grad():
            mu_g, ls_g = self.policy(g_obs, g_prev)
            u_g, _ = tanh_gaussian_sample(mu_g, ls_g, self.gen)
            log_pi_g = self.policy.log_prob_from_params(mu_g, ls_g, u_g)
        z_g = self._policy_logit(g_obs, g_prev, u_g, log_pi_g)[g_mask]
        if c.disc_real_negatives:  # pi's own actions on the positives' states
            with torch.no_grad():
                mu_r, ls_r = self.policy(e.obs, e.prev_act)
                u_r, _ = tanh_gaussian_sample(mu_r, ls_r, self.gen)
                log_pi_r = self.policy.log_prob_from_params(mu_r, ls_r, u_r)
            z_g = torch.cat([z_g, self._policy_logit(e.obs, e.prev_act, u_r, log_pi_r)[e.mask]])
        pu = self.pu(z_e, z_s, z_g)

        # model discriminator: real transitions of D_E u D_S vs counterfactual y^ ~ p
        r = self._sample("all")
        with torch.no_grad():
            params = self.model(r.obs, r.prev_act, r.act)
            base = (self.model_base(r.obs, r.prev_act, r.act) if self.model_base is not None
                    else None)
            cf = self._counterfactual(r, reparam=False, params=params, base=base)
        rows, t = cf["rows"], cf["t"]
        if c.discriminator == "structured":
            obs_ext, prev_ext = extend(r)
            lat = self.disc.encoder(obs_ext, prev_ext)
            lat_t, lat_next = lat[:, :-1], lat[:, 1:]
            with torch.no_grad():
                log_p = mixture_log_prob(*params, self.model.delta(r.obs, r.next_obs))
                log_q = self._log_q(*(base or (None, None)), r.obs, r.next_obs)
            z_real = L.structured_model_logit(
                self.disc.r(lat_t, r.act), self.disc.V(lat_next), self.disc.Q(lat_t, r.act),
                log_q, log_p, c.beta_m, c.eta_m, c.gamma)[r.mask]
            z_cf = L.structured_model_logit(
                self.disc.r(lat_t[rows, t], r.act[rows, t]), self._v_of(r, cf),
                self.disc.Q(lat_t[rows, t], r.act[rows, t]), cf["log_q"], cf["log_p"],
                c.beta_m, c.eta_m, c.gamma)
        else:
            lat = self.disc.encoder(r.obs, r.prev_act)
            z_real = self.disc.f_m(lat, r.act, self.model.delta(r.obs, r.next_obs))[r.mask]
            z_cf = self.disc.f_m(lat[rows, t], r.act[rows, t], self.model.delta(cf["x"], cf["y"]))
        loss_m = L.logistic_loss(z_real, z_cf)
        out = {"loss/disc_pi": float(pu.loss.detach()), "loss/disc_pi_risk": float(pu.risk),
               "loss/disc_pi_r_n": float(pu.r_n), "loss/disc_pi_corrected": float(pu.corrected),
               "loss/disc_m": float(loss_m.detach()),
               "acc/pi_expert": float((z_e > 0).float().mean()),
               "acc/pi_generated": float((z_g < 0).float().mean()),
               "acc/m_real": float((z_real > 0).float().mean()),
               "acc/m_model": float((z_cf < 0).float().mean())}
        if z_s is not None:
            out["acc/pi_unlabeled_as_negative"] = float((z_s < 0).float().mean())
        self._step("disc", self.disc, pu.loss + loss_m, out)
        return out

    # ---- 3: policy ---------------------------------------------------------------------------
    def policy_step(self) -> dict[str, float]:
        c = self.cfg
        r = self._sample("all")
        g_obs, g_prev, g_mask = self._generated()
        parts = []
        with frozen(self.disc):
            for obs, prev, mask in ((r.obs, r.prev_act, r.mask), (g_obs, g_prev, g_mask)):
                u, log_pi = tanh_gaussian_sample(*self.policy(obs, prev), self.gen)
                log_b = self._log_b(obs, prev, u)
                with torch.no_grad():
                    lat = self.disc.encoder(obs, prev)
                score = (self.disc.Q(lat, u) if c.discriminator == "structured"
                         else self.disc.f_pi(lat, u))
                parts.append((log_pi[mask], log_b[mask], score[mask]))
            log_pi, log_b, score = (torch.cat(p) for p in zip(*parts, strict=True))
            loss = L.actor_loss(log_pi, log_b, score, c.beta_pi, c.eta_pi)
            out = {"loss/actor": float(loss.detach()),
                   "policy/entropy": float(-log_pi.detach().mean())}
            if c.lambda_bc > 0:
                bc, _ = self._bc(self._expert_bc_batch())
                loss = loss + c.lambda_bc * bc
                out["loss/actor_bc"] = float(bc.detach())
            self._step("policy", self.policy, loss, out)
        return out

    # ---- 4: model ----------------------------------------------------------------------------
    def model_step(self) -> dict[str, float]:
        c = self.cfg
        r = self._sample("all")
        params = self.model(r.obs, r.prev_act, r.act)  # one pass for the NLL and y^
        nll = self._model_nll(r, params)
        with frozen(self.disc):
            cf = self._counterfactual(r, reparam=True, params=params)
            if c.discriminator == "structured":
                score = c.gamma * self._v_of(r, cf)
            else:
                lat = self.disc.encoder(r.obs, r.prev_act).detach()
                rows, t = cf["rows"], cf["t"]
                score = self.disc.f_m(lat[rows, t], r.act[rows, t],
                                      self.model.delta(cf["x"], cf["y"]))
            loss = L.model_loss(cf["log_p"], cf["log_q"], score, nll, c.beta_m, c.eta_m,
                                c.lambda_nll)
            out = {"loss/model": float(loss.detach()), "loss/model_nll": float(nll.detach())}
            self._step("model", self.model, loss, out)
        return out
