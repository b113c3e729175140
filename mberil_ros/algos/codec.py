"""How raw robot signals become network inputs and outputs, and back (normalization.json).

One object, used by the training data, by the algorithms' model rollouts and by the policy
runtime, so the three can never disagree:

- observation ``x``: ``(x - mean) / scale`` with mean/std of the TRAINING split only; a
  feature whose std is below ``min_std`` (constant over the data: an unused obstacle slot, a
  fixed goal) keeps scale 1 instead of being blown up by 1/eps.
- action: the network predicts ``y = u_t - ref_t`` where ``ref_t`` depends on
  ``action_repr``: ``absolute`` (ref 0, the raw joint target), ``delta_position`` (ref = the
  measured joint positions q_t) or ``delta_command`` (ref = the previous command u_{t-1}).
  ``y`` is mapped per joint by its own spread onto [-1/(1+2m), 1/(1+2m)] (min/max over the
  training split widened by the margin m), the range of the tanh-squashed policy.
  With relative representations one tick of motion spans the whole range instead of ~1 % of
  a workspace-wide range, so small errors no longer compound into "stand still".
- previous-action token: ``lead_t = u_{t-1} - q_t``, the last command minus the measured
  position, standardized. A position-controlled robot at rest holds its measured position,
  so ``u_{-1} = q_0`` (lead 0) at the episode start. The expert builds each command on its
  previous one, so this is part of the state a policy needs; a node knows what it sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mberil_ros.errors import UserError

ACTION_REPRS = ("absolute", "delta_position", "delta_command")
FORMAT = "mberil_codec/2"


def joint_position_index(state_names: Sequence[str], joints: Sequence[str]) -> np.ndarray:
    """Where each joint's measured position sits in the observation (``{joint}.pos``)."""
    names = list(state_names)
    missing = [j for j in joints if f"{j}.pos" not in names]
    if missing:
        raise UserError(f"observation has no position feature for joint(s) {missing} "
                        f"(expected names like '{missing[0]}.pos')")
    return np.array([names.index(f"{j}.pos") for j in joints], dtype=np.int64)


def previous_commands(obs: np.ndarray, act: np.ndarray, qidx: np.ndarray) -> np.ndarray:
    """u_{t-1} for every step of one episode: q_0 at t = 0, then the recorded commands."""
    prev = np.empty_like(act)
    prev[0] = obs[0, qidx]
    prev[1:] = act[:-1]
    return prev


@dataclass
class PolicyCodec:
    action_repr: str
    qidx: np.ndarray  # observation index of each controlled joint's position
    obs_mean: np.ndarray
    obs_scale: np.ndarray
    y_low: np.ndarray  # of the predicted quantity y = u - ref, margin included
    y_high: np.ndarray
    lead_mean: np.ndarray
    lead_scale: np.ndarray

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def fit(cls, episodes: Sequence[tuple[np.ndarray, np.ndarray]], qidx: np.ndarray,
            action_repr: str, min_std: float, act_margin: float,
            predicted: Sequence[bool] | None = None) -> PolicyCodec:
        """Statistics of ``episodes`` [(obs (T, D), act (T, A)), ...] (the training split).
        The action range comes from the episodes flagged in ``predicted`` (the expert's: what
        the policy predicts), all of them when none is flagged: a few sub-optimal episodes
        with 10-100x larger steps would otherwise squeeze the expert's actions into a sliver
        of (-1, 1), below the resolution of the policy's sigma."""
        if action_repr not in ACTION_REPRS:
            raise ValueError(f"action_repr must be one of {ACTION_REPRS}, got {action_repr!r}")
        obs = np.concatenate([o for o, _ in episodes]).astype(np.float64)
        prev = np.concatenate([previous_commands(o, a, qidx) for o, a in episodes])
        act = np.concatenate([a for _, a in episodes]).astype(np.float64)
        std = obs.std(0)
        scale = np.where(std > min_std, std, 1.0)
        ref = _reference(action_repr, obs[:, qidx], prev)
        y = act - ref
        rows = np.repeat(np.asarray(predicted if predicted is not None and any(predicted)
                                    else [True] * len(episodes), dtype=bool),
                         [len(o) for o, _ in episodes])
        lo, hi = y[rows].min(0), y[rows].max(0)
        span = np.maximum(hi - lo, 1e-4)  # a joint that never moved still needs a range
        lead = prev - obs[:, qidx]
        lstd = lead.std(0)
        f32 = lambda v: np.asarray(v, np.float32)  # noqa: E731
        return cls(action_repr, qidx, f32(obs.mean(0)), f32(scale),
                   f32(lo - act_margin * span), f32(hi + act_margin * span),
                   f32(lead.mean(0)), f32(np.where(lstd > 1e-6, lstd, 1.0)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "action_repr": self.action_repr,
            "joint_position_index": self.qidx.tolist(),
            "observation": {"mean": self.obs_mean.tolist(), "scale": self.obs_scale.tolist(),
                            "formula": "(x - mean) / scale"},
            "action": {"low": self.y_low.tolist(), "high": self.y_high.tolist(),
                       "formula": "y = u - ref (ref: 0 | q_t | u_{t-1}); "
                                  "a = 2 (y - low) / (high - low) - 1"},
            "prev_action": {"mean": self.lead_mean.tolist(), "scale": self.lead_scale.tolist(),
                            "formula": "(u_{t-1} - q_t - mean) / scale; u_{-1} = q_0"},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "normalization.json") -> PolicyCodec:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            found = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise UserError(f"{source}: normalization format {found!r} is not {FORMAT!r} "
                            "(checkpoint from an older version: retrain)")
        try:
            f = lambda v: np.asarray(v, np.float32)  # noqa: E731
            out = cls(d["action_repr"], np.asarray(d["joint_position_index"], np.int64),
                      f(d["observation"]["mean"]), f(d["observation"]["scale"]),
                      f(d["action"]["low"]), f(d["action"]["high"]),
                      f(d["prev_action"]["mean"]), f(d["prev_action"]["scale"]))
        except (KeyError, TypeError) as exc:
            raise UserError(f"{source}: missing or malformed field {exc}") from None
        if out.action_repr not in ACTION_REPRS:
            raise UserError(f"{source}: action_repr {out.action_repr!r} unknown")
        if not (np.all(np.isfinite(out.obs_scale)) and np.all(out.obs_scale > 0)
                and np.all(out.y_high > out.y_low)):
            raise UserError(f"{source}: non-positive or non-finite scales")
        return out

    @property
    def obs_dim(self) -> int:
        return len(self.obs_mean)

    @property
    def act_dim(self) -> int:
        return len(self.y_low)

    # ---- numpy (data pipeline, runtime) ----------------------------------------------------
    def obs(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.obs_mean) / self.obs_scale).astype(np.float32)

    def action(self, u: np.ndarray, x: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """Raw command u_t -> network action in [-1, 1]: what lies beyond the fitted range
        (a sub-optimal demonstrator's larger steps) is saturated at its edge, the edge of the
        policy's own support."""
        y = u - _reference(self.action_repr, x[..., self.qidx], prev)
        a = 2.0 * (y - self.y_low) / (self.y_high - self.y_low) - 1.0
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def command(self, a: np.ndarray, x: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """Network action -> raw command (before any safety clamp)."""
        y = self.y_low + (a + 1.0) * 0.5 * (self.y_high - self.y_low)
        return (y + _reference(self.action_repr, x[..., self.qidx], prev)).astype(np.float32)

    def lead(self, prev: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The previous-action token from the last command sent and the raw observation."""
        return ((prev - x[..., self.qidx] - self.lead_mean) / self.lead_scale).astype(np.float32)

    # ---- torch, on normalized tensors (model rollouts) -------------------------------------
    def torch_next_lead(self, x_n: torch.Tensor, lead_n: torch.Tensor, a_n: torch.Tensor,
                        y_n: torch.Tensor) -> torch.Tensor:
        """Token of step t+1 from step t's normalized state, token and action and the next
        normalized state: lead_{t+1} = u_t - q_{t+1}."""
        t = lambda v: torch.as_tensor(v, dtype=x_n.dtype, device=x_n.device)  # noqa: E731
        qi = torch.as_tensor(self.qidx, device=x_n.device)
        q_mean, q_scale = t(self.obs_mean[self.qidx]), t(self.obs_scale[self.qidx])
        lm, ls = t(self.lead_mean), t(self.lead_scale)
        q = x_n.index_select(-1, qi) * q_scale + q_mean
        prev = lead_n * ls + lm + q
        y = t(self.y_low) + (a_n + 1.0) * 0.5 * t(self.y_high - self.y_low)
        u = y + _reference(self.action_repr, q, prev)
        q_next = y_n.index_select(-1, qi) * q_scale + q_mean
        return (u - q_next - lm) / ls


def _reference(action_repr: str, q, prev):  # noqa: ANN001, ANN202 - numpy or torch alike
    """ref_t of the action representation, for numpy arrays and torch tensors alike."""
    if action_repr == "absolute":
        return q * 0
    if action_repr == "delta_position":
        return q
    return prev
