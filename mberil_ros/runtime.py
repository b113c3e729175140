"""The policy runtime: a checkpoint folder -> one joint command per control tick.

Library code (no rclpy): the policy node, `mberil eval` and `mberil demo` all drive a policy
through this class, so normalization, the previous-action convention and the safety clamps
live in exactly one place.

Per tick: raw observation -> codec-normalized -> one recurrent encoder step (O(1), never a
window re-run) -> the mean action (or a sample) -> raw command -> clamped to the joint
position limits and to ``velocity limit * dt`` from the last command sent. The clamped
command is what the next tick's previous-action token is built from, as in the recordings.
A non-finite observation holds the last command (the arm stays where it is) and says why.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mberil_ros.algos import checkpoint as ckpt
from mberil_ros.algos.codec import PolicyCodec
from mberil_ros.errors import UserError

# rad: after an e-stop, the arm counts as not moved (the policy's history still holds) when
# every joint is this close to the held command; about two ticks of the expert's command lead
ESTOP_RESUME_TOLERANCE = 0.02


@dataclass(frozen=True)
class JointLimits:
    lower: np.ndarray  # rad
    upper: np.ndarray  # rad
    velocity: np.ndarray  # rad/s

    @classmethod
    def from_urdf(cls, joints: Sequence[str], urdf: str | Path | None = None) -> JointLimits:
        """Limits of ``joints`` from the robot description (the package's xacro by default)."""
        from mberil_ros.robot_description import RobotDescription

        robot = RobotDescription.from_xacro(urdf)
        missing = [j for j in joints if j not in robot.joints]
        if missing:
            raise UserError(f"robot description has no joint(s) {missing}")
        spec = [robot.joints[j] for j in joints]
        return cls(np.array([s.lower for s in spec]), np.array([s.upper for s in spec]),
                   np.array([s.velocity for s in spec]))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: missing from the checkpoint") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc})") from None


class PolicyRuntime:
    """``PolicyRuntime.load(CHECKPOINT)``, then ``reset(obs)`` per episode and
    ``step(obs) -> command`` per tick."""

    def __init__(self, policy: torch.nn.Module, codec: PolicyCodec, config: dict[str, Any],
                 limits: JointLimits, deterministic: bool = True, seed: int = 0) -> None:
        self.policy = policy.eval()
        self.codec = codec
        self.config = config
        self.joint_names: list[str] = list(config["joint_names"])
        self.state_names: list[str] = list(config.get("state_names", []))
        self.dt = 1.0 / float(config["fps"])
        self.limits = limits
        self.deterministic = deterministic
        self.gen = torch.Generator().manual_seed(seed)
        self.prev_command: np.ndarray | None = None
        self.hold_reason: str | None = None
        # (mu, log sigma) of the last step's action distribution, for diagnostics
        self.last_params: tuple[np.ndarray, np.ndarray] | None = None
        self._state = None

    # ---- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, *, joint_names: Sequence[str] | None = None,
             state_names: Sequence[str] | None = None, urdf: str | Path | None = None,
             deterministic: bool = True, seed: int = 0) -> PolicyRuntime:
        """Load a checkpoint folder (or a run folder: its ``checkpoints/last``). Refuses, with
        one line naming the mismatch, joint names or observation features that differ from
        ``joint_names`` / ``state_names`` (what the robot or simulator provides)."""
        from mberil_ros.models.config import from_dict
        from mberil_ros.models.heads import TanhGaussianPolicy

        folder = ckpt.resolve(Path(path))
        config = _read_json(folder / ckpt.POLICY_CONFIG)
        for key in ("model", "joint_names", "obs_dim", "act_dim", "fps"):
            if key not in config:
                raise UserError(f"{folder / ckpt.POLICY_CONFIG}: field {key!r} missing")
        codec = PolicyCodec.from_dict(_read_json(folder / ckpt.NORMALIZATION),
                                      str(folder / ckpt.NORMALIZATION))
        if (codec.obs_dim, codec.act_dim) != (config["obs_dim"], config["act_dim"]):
            raise UserError(f"{folder}: normalization is for {codec.obs_dim} observation / "
                            f"{codec.act_dim} action values, the policy for "
                            f"{config['obs_dim']} / {config['act_dim']}")
        if joint_names is not None and list(joint_names) != list(config["joint_names"]):
            raise UserError(f"{folder}: policy controls joints {config['joint_names']}, the "
                            f"robot provides {list(joint_names)}")
        if state_names is not None and config.get("state_names") is not None and list(
                state_names) != list(config["state_names"]):
            theirs, ours = list(config["state_names"]), list(state_names)
            diff = next((i for i, (a, b) in enumerate(zip(theirs, ours, strict=False)) if a != b),
                        min(len(theirs), len(ours)))
            raise UserError(f"{folder}: observation layout differs from the policy's at "
                            f"index {diff} (policy {len(theirs)} features, robot {len(ours)}; "
                            f"e.g. {theirs[diff:diff + 1]} vs {ours[diff:diff + 1]})")
        try:
            pcfg = from_dict(config["model"])
        except ValueError as exc:
            raise UserError(f"{folder / ckpt.POLICY_CONFIG}: {exc}") from None
        policy = TanhGaussianPolicy(pcfg)
        prefix = config.get("weights_prefix", "policy")
        weights = {k: v for k, v in ckpt.load_weights(folder).items()
                   if k.startswith(prefix + ".")}
        ckpt.load_modules({prefix: policy}, weights, folder)
        limits = JointLimits.from_urdf(config["joint_names"], urdf)
        return cls(policy, codec, config, limits, deterministic, seed)

    @classmethod
    def from_policy(cls, policy: torch.nn.Module, config: dict[str, Any],
                    urdf: str | Path | None = None) -> PolicyRuntime:
        """A runtime on a CPU copy of a policy being trained (``config`` as exported by the
        algorithm, normalization included): closed-loop checks during training."""
        import copy

        codec = PolicyCodec.from_dict(config["normalization"], "policy config")
        twin = copy.deepcopy(policy).to("cpu")
        return cls(twin, codec, config, JointLimits.from_urdf(config["joint_names"], urdf))

    # ---- control -----------------------------------------------------------------------------
    def reset(self, observation: np.ndarray) -> None:
        """A new episode: fresh recurrent state; the last command is the measured position
        (what a position-controlled arm holds when the policy takes over)."""
        obs = self._check(observation)
        if not np.all(np.isfinite(obs)):
            raise ValueError("observation at reset contains NaN or inf: cannot start")
        self.prev_command = obs[self.codec.qidx].astype(np.float64)
        self.prev_command = np.clip(self.prev_command, self.limits.lower, self.limits.upper)
        self._state = self.policy.encoder.init_state(1)
        self.hold_reason = None

    def resume(self, observation: np.ndarray, tolerance: float) -> float | None:
        """After a hold the policy was not stepped in (an e-stop): keep the recurrent state
        when the arm is where the last command held it, every joint within ``tolerance``
        rad, and return how far it is (rad); otherwise reset(observation) and return None.
        A fresh history in mid-reach is what a Mamba policy has never seen: it creeps
        towards the target (docs/learning.md, "Holds in mid-reach")."""
        obs = self._check(observation)
        if self.prev_command is not None and self._state is not None and tolerance > 0:
            moved = float(np.max(np.abs(obs[self.codec.qidx] - self.prev_command)))
            if moved <= tolerance:  # NaN compares False: a reset, which refuses it
                self.hold_reason = None
                return moved
        self.reset(observation)
        return None

    def stop(self) -> None:
        """The episode is over (a reset moved the arm): nothing to hold until the next
        reset(), so a hold never sends the previous episode's command."""
        self.prev_command = None
        self._state = None

    @torch.no_grad()
    def step(self, observation: np.ndarray) -> np.ndarray:
        """The joint command for this tick (joint_names order, rad)."""
        if self.prev_command is None:
            raise RuntimeError("PolicyRuntime.step() before reset()")
        obs = self._check(observation)
        if not np.all(np.isfinite(obs)):
            bad = [self.state_names[i] if i < len(self.state_names) else str(i)
                   for i in np.flatnonzero(~np.isfinite(obs))[:3]]
            return self.hold(f"non-finite observation ({', '.join(bad)})")
        c = self.codec
        x = torch.from_numpy(c.obs(obs))[None]
        lead = torch.from_numpy(c.lead(self.prev_command.astype(np.float32), obs))[None]
        latent = self.policy.encoder.step(x, lead, self._state)
        mu, log_std = self.policy.dist_params(latent)
        self.last_params = (mu[0].numpy(), log_std[0].numpy())
        if self.deterministic:
            a = torch.tanh(mu)
        else:
            a = torch.tanh(mu + log_std.exp() * torch.randn(mu.shape, generator=self.gen))
        u = c.command(a[0].numpy().astype(np.float64), obs.astype(np.float64),
                      self.prev_command)
        if not np.all(np.isfinite(u)):
            return self.hold("policy produced a non-finite command")
        self.hold_reason = None
        self.prev_command = self.clamp(u)
        return self.prev_command.copy()

    def clamp(self, command: np.ndarray) -> np.ndarray:
        """Joint position limits, and at most ``velocity limit * dt`` from the last command."""
        step = self.limits.velocity * self.dt
        u = np.clip(command, self.prev_command - step, self.prev_command + step)
        return np.clip(u, self.limits.lower, self.limits.upper)

    def hold(self, reason: str) -> np.ndarray:
        """Repeat the last command (stale or invalid input); ``hold_reason`` says why."""
        self.hold_reason = reason
        self.last_params = None
        return self.prev_command.copy()

    def _check(self, observation: np.ndarray) -> np.ndarray:
        obs = np.asarray(observation, dtype=np.float32).reshape(-1)
        if obs.shape[0] != self.codec.obs_dim:
            raise ValueError(f"observation has {obs.shape[0]} values, the policy expects "
                             f"{self.codec.obs_dim}")
        return obs

    @property
    def summary(self) -> str:
        c = self.config
        return (f"{c.get('algorithm', '?')} / {c.get('backbone', '?')} policy, "
                f"{len(self.joint_names)} joints at {1.0 / self.dt:g} Hz, actions "
                f"{self.codec.action_repr}, inputs {c['model']['config']['encoder'].get('inputs')}")
