"""What the adversarial phase's actor is told, measured on held-out expert steps.

The actor minimizes ln pi(u|h) - (beta/eta) ln b(u|h) - beta score(h, u), with score the
discriminator's Q (structured) or f_pi (unstructured). Whether that can improve a warm start
depends on two things this module measures at the policy's mean action u_pi = tanh(mu):

- direction: the cosine between the score's action gradient and the expert's correction
  a_E - u_pi. Near 1 the discriminator points the policy towards the expert; near 0 its
  push is noise. Reported over all steps and over the 10 % where the policy is furthest from
  the expert (the states a better policy would have to change).
- reach: how far the score can move the mean against the baseline b. For a Gaussian b in
  pre-tanh units, the actor's gradient in the pre-tanh mean vanishes at
  z - mu_b = eta sigma_b^2 dscore/dz; mapped back to action units through tanh, that shift
  is compared with the gap it would have to close. The BC anchor (lambda_bc) pulls back as
  well, so the real shift is smaller still.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from mberil_ros.algos.data import Batch

Score = Callable[[Batch, torch.Tensor], torch.Tensor]  # (batch, u) -> (B, T)


def actor_signal(policy: torch.nn.Module, score: Score, batches: Iterable[Batch],
                 device: torch.device, eta: float,
                 baseline: torch.nn.Module | None = None,
                 baseline_log_std_min: float | None = None,
                 top_fraction: float = 0.1) -> dict[str, float]:
    """``actor/q_align``, ``actor/q_align_top``, ``actor/gap_top`` and (with a baseline)
    ``actor/q_shift``, ``actor/q_shift_top``: means over the valid steps of ``batches``."""
    cos, gap, shift = [], [], []
    was_training = policy.training
    policy.eval()
    with torch.enable_grad():
        for b in batches:
            b = b.to(device)
            with torch.no_grad():
                mu, _ = policy(b.obs, b.prev_act)
                u_pi = torch.tanh(mu)
            u = u_pi.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(score(b, u).masked_fill(~b.mask, 0.0).sum(), u)
            m = b.mask
            correction = (b.act - u_pi)[m]
            g = grad[m]
            cos.append(torch.nn.functional.cosine_similarity(g, correction, dim=-1, eps=1e-12))
            gap.append(correction.norm(dim=-1))
            if baseline is not None:
                with torch.no_grad():
                    _, ls_b = baseline(b.obs, b.prev_act)
                    if baseline_log_std_min is not None:
                        ls_b = ls_b.clamp(min=baseline_log_std_min)
                jac = 1.0 - u_pi[m] ** 2  # du/dz of tanh
                shift.append((jac * eta * torch.exp(2 * ls_b[m]) * jac * g).norm(dim=-1))
    policy.train(was_training)
    if not cos:
        return {}
    c, d = torch.cat(cos), torch.cat(gap)
    k = max(1, int(round(top_fraction * d.numel())))
    top = torch.topk(d, k).indices
    out = {"actor/q_align": float(c.mean()), "actor/q_align_top": float(c[top].mean()),
           "actor/gap_top": float(d[top].mean())}
    if shift:
        s = torch.cat(shift)
        out.update({"actor/q_shift": float(s.mean()), "actor/q_shift_top": float(s[top].mean())})
    return out
