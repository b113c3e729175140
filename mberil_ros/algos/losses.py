"""The losses of Offline-MB-ERIL (docs/algorithm.md §4-§5), as small pure functions.

Inputs are flat tensors of valid steps (the caller masks padding out). Log-densities that
enter a discriminator logit are detached here, so a discriminator step can never push
gradients into the policy or the model through them.

References: E. Uchibe, "Model-Based Imitation Learning Using Entropy Regularization of Model
and Policy" (RA-L 2022) and its offline variant (2023 report); R. Kiryo et al.,
"Positive-Unlabeled Learning with Non-Negative Risk Estimator" (NeurIPS 2017).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def loss_pos(z: torch.Tensor) -> torch.Tensor:
    """-ln sigmoid(z): the loss of calling a sample positive."""
    return F.softplus(-z)


def loss_neg(z: torch.Tensor) -> torch.Tensor:
    """-ln(1 - sigmoid(z)): the loss of calling a sample negative."""
    return F.softplus(z)


def logistic_loss(z_pos: torch.Tensor, z_neg: torch.Tensor) -> torch.Tensor:
    """Plain logistic regression, each class averaged separately (the model discriminator:
    real transitions vs counterfactual model transitions)."""
    return loss_pos(z_pos).mean() + loss_neg(z_neg).mean()


@dataclass
class PUResult:
    loss: torch.Tensor  # what to backward() (the nnPU step)
    risk: torch.Tensor  # the non-negative risk estimate R_P+ + 1/2 max(0,R_N) + 1/2 R_G- (log)
    r_n: torch.Tensor  # estimated negative risk of the unlabeled data (may be < 0)
    corrected: bool  # True when R_N < 0 and the step is on -R_N


class PUDiscriminatorLoss:
    """Policy discriminator with expert data as positives, sub-optimal data as unlabeled and
    model rollouts as negatives (docs/algorithm.md §5, nnPU of Kiryo et al.).

        R_N = (E_S[l-] - alpha E_E[l-]) / (1 - alpha)
        L   = E_E[l+] + 1/2 max(0, R_N) + 1/2 E_G[l-]

    When R_N < 0 the estimator is over-fitting the positives inside the unlabeled data; the
    step is then taken on -R_N alone (Kiryo et al.'s Algorithm 1 with gamma = 1, beta = 0),
    which pushes the unlabeled logits up and the positive logits down. alpha = 0 is the naive
    loss that treats every sub-optimal sample as a negative. Without unlabeled data
    (``z_unl`` None, only allowed at alpha = 0) the R_N term is dropped.
    """

    def __init__(self, alpha: float) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        self.alpha = alpha

    def __call__(self, z_pos: torch.Tensor, z_unl: torch.Tensor | None,
                 z_gen: torch.Tensor) -> PUResult:
        r_p_pos = loss_pos(z_pos).mean()
        r_g = loss_neg(z_gen).mean()
        if z_unl is None:
            if self.alpha > 0:
                raise ValueError("alpha > 0 needs unlabeled (sub-optimal) samples")
            risk = r_p_pos + 0.5 * r_g
            return PUResult(risk, risk.detach(), torch.zeros(()), False)
        r_n = (loss_neg(z_unl).mean() - self.alpha * loss_neg(z_pos).mean()) / (1 - self.alpha)
        risk = r_p_pos + 0.5 * r_n.clamp(min=0.0) + 0.5 * r_g
        corrected = bool(r_n.detach() < 0)
        loss = -r_n if corrected else risk
        return PUResult(loss, risk.detach(), r_n.detach(), corrected)


def mix_uniform(log_density: torch.Tensor, eps: float, dim: int) -> torch.Tensor:
    """ln((1 - eps) p(u) + eps U(u)) from ln p(u), U uniform on (-1, 1)^dim: a density that
    no action in the box takes below ln eps - dim ln 2 (eps = 0: ln p unchanged)."""
    if eps <= 0.0:
        return log_density
    floor = torch.full_like(log_density, math.log(eps) - dim * math.log(2.0))
    return torch.logaddexp(log_density + math.log1p(-eps), floor)


def structured_policy_logit(q: torch.Tensor, v: torch.Tensor, log_b: torch.Tensor,
                            log_pi: torch.Tensor, beta: float, eta: float) -> torch.Tensor:
    """logit_pi = beta (Q - V) + (beta/eta) ln b - ln pi (docs/algorithm.md §4); the densities are
    constants of the discriminator step."""
    return beta * (q - v) + (beta / eta) * log_b.detach() - log_pi.detach()


def structured_model_logit(r: torch.Tensor, v_next: torch.Tensor, q: torch.Tensor,
                           log_q: torch.Tensor, log_p: torch.Tensor, beta: float, eta: float,
                           gamma: float) -> torch.Tensor:
    """logit_m = beta (r + gamma V(y) - Q) + (beta/eta) ln q - ln p (docs/algorithm.md §4)."""
    return beta * (r + gamma * v_next - q) + (beta / eta) * log_q.detach() - log_p.detach()


def actor_loss(log_pi: torch.Tensor, log_b: torch.Tensor, score: torch.Tensor, beta: float,
               eta: float) -> torch.Tensor:
    """E[ln pi(u|h) - (beta/eta) ln b(u|h) - beta score(h,u)], u ~ pi reparameterised.
    score is Q (structured) or the free logit network (unstructured); its parameters must be
    frozen by the caller, the gradient reaches u through it."""
    return (log_pi - (beta / eta) * log_b - beta * score).mean()


def model_loss(log_p: torch.Tensor, log_q: torch.Tensor, score: torch.Tensor,
               nll: torch.Tensor, beta: float, eta: float, lambda_nll: float) -> torch.Tensor:
    """E[ln p(y^|h,u) - (beta/eta) ln q(y^|h,u) - beta score] + lambda_nll E_real[-ln p(y|h,u)]
    with y^ ~ p reparameterised; score is gamma V(y^) (structured) or the free model logit
    (unstructured). ``nll`` is the per-sample real-data NLL."""
    return (log_p - (beta / eta) * log_q - beta * score).mean() + lambda_nll * nll.mean()
