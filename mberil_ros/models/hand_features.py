"""Hand features: forward kinematics of the controlled arm(s) inside the network.

What the scripted expert plans with is Cartesian: the hand's position, the straight line to
the goal and which obstacle stands on it. From joint angles alone a network has to learn the
arm's kinematics before it can learn any of that, and with a few hundred demonstrations it
learns both loosely. This module computes, from the (normalized) observation, per hand:

    hand xyz,  goal - hand,  and per obstacle slot (0 for an empty slot):
      "hand":          obstacle centre - hand
      "hand_surface":  the obstacle's lower and upper corners - hand, and its nearest point
                       - hand (box, or a sphere's bounding box; 0 inside it)
      "hand_path":     its nearest point - hand, its top - the hand's height, the distance
                       from the straight hand-to-goal segment to it, and a gate; all times
                       the gate, which is 1 within PATH_NEAR of that segment and 0 beyond
                       PATH_FAR, so an obstacle off the hand's way reads as an empty slot

standardized by their training-split statistics, and the encoder reads them next to the
observation.

With ``gate`` (the policy's ``policy_obstacle_gate``) the module also multiplies every
obstacle slot of the observation by a gate before anything reads it: 1 when the obstacle's
box is within GATE_NEAR of the hand-to-goal segment or of an arm link (the segments between
the arm's joint origins), 0 beyond GATE_FAR. An obstacle off the hand's way and clear of the
arm then reads exactly as an empty slot, wherever it stands.

It is part of the network (buffers in the checkpoint), so the runtime, the model rollouts
of Offline-MB-ERIL and training all compute the same thing, and a checkpoint carries its own
kinematic chain: no URDF is needed to run it.

The chain is the URDF's (joint origins and axes from the robot description), from WAIST to
each hand's JOINT5_Link origin (the flange, the simulator's hand point), with the joints
outside the arm (the chest) at 0 as in the task.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mberil_ros.errors import UserError
from mberil_ros.sim.spaces import OBSTACLE_FIELDS

ARM_JOINTS = 6


# values per obstacle slot, per feature mode
OBSTACLE_VALUES = {"hand": 3, "hand_surface": 9, "hand_path": 6}
_OBSTACLE_FIELDS = {"hand": ("x", "y", "z", "present"),
                    "hand_surface": ("x", "y", "z", "hx", "hy", "hz", "present")}
_OBSTACLE_FIELDS["hand_path"] = _OBSTACLE_FIELDS["hand_surface"]
# "hand_path" gate (m from the hand-to-goal segment). The scripted expert plans around an
# obstacle only within 7.5 cm of that segment (its line-of-sight test) and is pushed by one
# only within 5 cm of an arm link; the gate opens a few cm earlier so that the network sees
# an obstacle before it matters. Chosen from those ranges, not tuned on any suite.
PATH_NEAR, PATH_FAR = 0.10, 0.15
_PATH_SAMPLES = 33  # points on the segment: <= 0.7 cm spacing on the task's <= 0.45 m reaches
# Slot gate (m from the hand-to-goal segment or from an arm link's axis): the same range. The
# links are at most 4 cm in radius, so the expert's 5 cm of repulsion from a link's surface
# lies within 9 cm of its axis, inside GATE_NEAR.
GATE_NEAR, GATE_FAR = PATH_NEAR, PATH_FAR
_LINK_SAMPLES = 17  # points per link segment: <= 1.6 cm spacing on the 0.25 m upper arm


def feature_dim(n_hands: int, n_obstacles: int, mode: str = "hand") -> int:
    return n_hands * (6 + OBSTACLE_VALUES[mode] * n_obstacles)


def _rotation(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: rotation matrices (..., 3, 3) about unit ``axis`` (3,) by ``angle`` (...)."""
    k = axis.new_zeros(3, 3)
    k[0, 1], k[0, 2], k[1, 0] = -axis[2], axis[1], axis[2]
    k[1, 2], k[2, 0], k[2, 1] = -axis[0], -axis[1], axis[0]
    s, c = torch.sin(angle)[..., None, None], torch.cos(angle)[..., None, None]
    return torch.eye(3, dtype=axis.dtype, device=axis.device) + s * k + (1 - c) * (k @ k)


class HandFeatures(nn.Module):
    """normalized observation (..., obs_dim) -> hand features (..., feature_dim)."""

    def __init__(self, obs_dim: int, n_hands: int, n_obstacles: int, mode: str = "hand",
                 gate: bool = False) -> None:
        super().__init__()
        if mode not in OBSTACLE_VALUES:
            raise ValueError(f"HandFeatures mode must be one of {tuple(OBSTACLE_VALUES)}, "
                             f"got {mode!r}")
        self.n_hands, self.n_obstacles, self.mode, self.gate = n_hands, n_obstacles, mode, gate
        self.out_dim = feature_dim(n_hands, n_obstacles, mode)
        # every value below is filled by configure() before training and restored from the
        # checkpoint at load time (persistent buffers)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_scale", torch.ones(obs_dim))
        self.register_buffer("q_index", torch.zeros(n_hands, ARM_JOINTS, dtype=torch.long))
        self.register_buffer("goal_index", torch.zeros(n_hands, 3, dtype=torch.long))
        self.register_buffer("obstacle_index", torch.zeros(
            n_obstacles, len(_OBSTACLE_FIELDS[mode]), dtype=torch.long))
        if gate:  # every field of every slot, in the observation's order
            self.register_buffer("slot_index", torch.zeros(n_obstacles, len(OBSTACLE_FIELDS),
                                                           dtype=torch.long))
        self.register_buffer("base_rotation", torch.eye(3).repeat(n_hands, 1, 1))
        self.register_buffer("base_translation", torch.zeros(n_hands, 3))
        self.register_buffer("joint_rotation", torch.eye(3).repeat(n_hands, ARM_JOINTS, 1, 1))
        self.register_buffer("joint_translation", torch.zeros(n_hands, ARM_JOINTS, 3))
        self.register_buffer("joint_axis", torch.zeros(n_hands, ARM_JOINTS, 3))
        self.register_buffer("feat_mean", torch.zeros(self.out_dim))
        self.register_buffer("feat_scale", torch.ones(self.out_dim))

    # ---- set-up ------------------------------------------------------------------------------
    @torch.no_grad()
    def configure(self, state_names: Sequence[str], joint_names: Sequence[str],
                  obs_mean: np.ndarray, obs_scale: np.ndarray, train_obs: np.ndarray,
                  urdf: str | None = None) -> None:
        """Indices from the observation's feature names, the chain from the URDF, the
        normalization of the observation (the codec's) and feature statistics from
        ``train_obs`` (raw observations of the training split)."""
        from mberil_ros.robot_description import RobotDescription, rpy_matrix

        names = list(state_names)

        def at(name: str) -> int:
            if name not in names:
                raise UserError(f"network.features {self.mode!r} needs the observation feature "
                                f"{name!r}, which this dataset does not have (use "
                                "features: none with policy_obstacle_gate: false)")
            return names.index(name)

        hands = [joint_names[i * ARM_JOINTS:(i + 1) * ARM_JOINTS] for i in range(self.n_hands)]
        goal_roles = ("goal", "goal_left")
        robot = RobotDescription.from_xacro(urdf)
        rest = {j: 0.0 for j in robot.movable_joints}
        for h, joints in enumerate(hands):
            self.q_index[h] = torch.tensor([at(f"{j}.pos") for j in joints])
            self.goal_index[h] = torch.tensor([at(f"{goal_roles[h]}.{c}") for c in "xyz"])
            specs = [robot.joints[j] for j in joints]
            base = robot.forward_kinematics(rest)[specs[0].parent]
            self.base_rotation[h] = torch.from_numpy(base[:3, :3]).float()
            self.base_translation[h] = torch.from_numpy(base[:3, 3]).float()
            for k, s in enumerate(specs):
                self.joint_rotation[h, k] = torch.from_numpy(rpy_matrix(s.rpy)).float()
                self.joint_translation[h, k] = torch.tensor(s.xyz)
                axis = np.asarray(s.axis, dtype=np.float64)
                self.joint_axis[h, k] = torch.from_numpy(axis / np.linalg.norm(axis)).float()
        for k in range(self.n_obstacles):
            self.obstacle_index[k] = torch.tensor(
                [at(f"obstacle{k}.{f}") for f in _OBSTACLE_FIELDS[self.mode]])
            if self.gate:
                self.slot_index[k] = torch.tensor([at(f"obstacle{k}.{f}")
                                                   for f in OBSTACLE_FIELDS])
        self.obs_mean.copy_(torch.as_tensor(obs_mean, dtype=torch.float32))
        self.obs_scale.copy_(torch.as_tensor(obs_scale, dtype=torch.float32))
        self.feat_mean.zero_()
        self.feat_scale.fill_(1.0)
        x_n = (torch.as_tensor(train_obs, dtype=torch.float32) - self.obs_mean) / self.obs_scale
        _, f = self.read(x_n)
        self.feat_mean.copy_(f.mean(0))
        self.feat_scale.copy_(f.std(0).clamp(min=1e-3))

    # ---- forward -----------------------------------------------------------------------------
    def joint_origins(self, x_n: torch.Tensor) -> torch.Tensor:
        """(..., n_hands, 6, 3): each arm's JOINT0..JOINT5 origins in WAIST (the last is the
        hand) from a normalized observation."""
        q = self._raw(x_n, self.q_index.flatten()).unflatten(-1, (self.n_hands, ARM_JOINTS))
        out = []
        for h in range(self.n_hands):
            rot = self.base_rotation[h].expand(*q.shape[:-2], 3, 3)
            pos = self.base_translation[h].expand(*q.shape[:-2], 3)
            origins = []
            for k in range(ARM_JOINTS):
                pos = pos + (rot @ self.joint_translation[h, k][:, None])[..., 0]
                origins.append(pos)
                rot = rot @ self.joint_rotation[h, k] @ _rotation(self.joint_axis[h, k],
                                                                   q[..., h, k])
            out.append(torch.stack(origins, -2))
        return torch.stack(out, -3)

    def hand_positions(self, x_n: torch.Tensor) -> torch.Tensor:
        """(..., n_hands, 3) hand positions in WAIST from a normalized observation."""
        return self.joint_origins(x_n)[..., -1, :]

    def slot_gate(self, x_n: torch.Tensor, joints: torch.Tensor | None = None) -> torch.Tensor:
        """(..., n_obstacles) in [0, 1]: 1 for an obstacle within GATE_NEAR of a hand's way to
        its goal or of an arm link, 0 beyond GATE_FAR (and for an empty slot). ``joints``:
        joint_origins(x_n), when the caller has them already."""
        joints = self.joint_origins(x_n) if joints is None else joints
        ob = self._raw(x_n, self.slot_index.flatten()).unflatten(
            -1, (self.n_obstacles, len(OBSTACLE_FIELDS)))
        d = []
        for h in range(self.n_hands):
            hand, goal = joints[..., h, -1, :], self._raw(x_n, self.goal_index[h])
            d.append(_segment_box_distance(hand, goal, ob, _PATH_SAMPLES))
            d += [_segment_box_distance(joints[..., h, k, :], joints[..., h, k + 1, :], ob,
                                        _LINK_SAMPLES) for k in range(ARM_JOINTS - 1)]
        near = torch.stack(d, -1).amin(-1)
        return ((GATE_FAR - near) / (GATE_FAR - GATE_NEAR)).clamp(0.0, 1.0) * ob[..., -1]

    def gated(self, x_n: torch.Tensor, joints: torch.Tensor | None = None) -> torch.Tensor:
        """The normalized observation with every obstacle slot's raw values times its
        slot_gate: a slot at gate 0 equals an empty one (all raw values 0)."""
        idx = self.slot_index.flatten()
        gate = self.slot_gate(x_n, joints).repeat_interleave(len(OBSTACLE_FIELDS), -1)
        raw = self._raw(x_n, idx) * gate
        return x_n.index_copy(-1, idx, (raw - self.obs_mean[idx]) / self.obs_scale[idx])

    def _raw(self, x_n: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Raw observation values at ``idx`` from the normalized observation."""
        return x_n[..., idx] * self.obs_scale[idx] + self.obs_mean[idx]

    def read(self, x_n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the observation as an encoder reads it, its features): with the gate, obstacle
        slots pass through it first. The gate leaves the joints alone, so the forward
        kinematics run once for both."""
        if not self.gate:
            return x_n, self.forward(x_n)
        joints = self.joint_origins(x_n)
        x_n = self.gated(x_n, joints)
        return x_n, self.forward(x_n, joints[..., -1, :])

    def forward(self, x_n: torch.Tensor, hand: torch.Tensor | None = None) -> torch.Tensor:
        hand = self.hand_positions(x_n) if hand is None else hand
        ob = self._raw(x_n, self.obstacle_index.flatten()).unflatten(
            -1, (self.n_obstacles, self.obstacle_index.shape[1]))
        present = ob[..., -1:]
        parts = []
        for h in range(self.n_hands):
            p, goal = hand[..., h, :], self._raw(x_n, self.goal_index[h])
            parts += [p, goal - p]
            if self.mode == "hand":
                rel = ob[..., :3] - p[..., None, :]
            elif self.mode == "hand_path":
                rel = _path_values(p, goal, ob)
            else:
                # Hand-relative corners and nearest point: what the expert plans with (the
                # top to clear, the gap to keep), unchanged when the whole scene shifts.
                rel = torch.cat(_box_offsets(p, ob), -1)
            parts.append((rel * present).flatten(-2))
        f = torch.cat(parts, -1)
        return (f - self.feat_mean) / self.feat_scale


def _box_offsets(hand: torch.Tensor, ob: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lower corner, upper corner and nearest point (0 inside) of each obstacle's box, minus
    the hand (..., 3), from raw obstacle slots (..., n_obstacles, 7: centre, half extents,
    present). Spheres are read as their bounding boxes, as the observation gives them."""
    centre, half = ob[..., :3], ob[..., 3:6]
    low, high = centre - half - hand[..., None, :], centre + half - hand[..., None, :]
    return low, high, torch.minimum(torch.maximum(low, low.new_zeros(())), high)


def _segment_box_distance(a: torch.Tensor, b: torch.Tensor, ob: torch.Tensor, samples: int
                          ) -> torch.Tensor:
    """(..., n_obstacles): distance from the segment a-b (..., 3), sampled at ``samples``
    points, to each obstacle's box in raw slots (..., n_obstacles, 7+)."""
    centre, half = ob[..., :3], ob[..., 3:6]
    t = torch.linspace(0.0, 1.0, samples, dtype=a.dtype, device=a.device)
    points = a[..., None, :] + t[:, None] * (b - a)[..., None, :]  # (..., K, 3)
    gap = ((points[..., None, :, :] - centre[..., :, None, :]).abs() - half[..., :, None, :])
    return gap.clamp(min=0.0).norm(dim=-1).amin(-1)


def _path_values(hand: torch.Tensor, goal: torch.Tensor, ob: torch.Tensor) -> torch.Tensor:
    """"hand_path" values (..., n_obstacles, 6) from the hand and goal (..., 3) and raw
    obstacle slots (as in _box_offsets)."""
    _, high, nearest = _box_offsets(hand, ob)
    top = high[..., 2:3]
    path = _segment_box_distance(hand, goal, ob, _PATH_SAMPLES)[..., None]
    gate = ((PATH_FAR - path) / (PATH_FAR - PATH_NEAR)).clamp(0.0, 1.0)
    return torch.cat([nearest, top, path, torch.ones_like(gate)], -1) * gate
