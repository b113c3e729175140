"""Scripted demonstrators for the reaching task (docs/task.md).

Every demonstrator is a closed-loop policy: ``reset(episode)`` gives it the task geometry
(targets, obstacles), then ``act(obs)`` maps each 50 Hz observation to joint position
targets (spaces.py layout). That is all a ROS node needs to drive one through topics.

The expert is damped-least-squares IK on the hand position with
- a visibility-based Cartesian carrot: straight to the target when the segment is clear of
  every obstacle (inflated by the hand's size), otherwise above the target at a safe height,
  otherwise straight up;
- repulsion of every arm link from obstacles and the table (closest points from
  mj_geomDistance, mapped through that point's Jacobian);
- a null-space pull towards init_rtm, which keeps the elbow and wrist in a natural pose;
- an elbow weight that fades as the elbow nears the fold where forearm meets upper arm;
- NEXTAGE-like speeds: the hand at <= 0.1 m/s (2-6 s per reach) and the joints at a quarter
  of the URDF velocity limits.
It costs a few dozen MuJoCo distance queries per tick, so it runs faster than real time.

Sub-optimal demonstrators reuse the same controller at the same speeds with worse settings
(label "suboptimal"): ``noisy`` (correlated action noise, thin safety margins; often grazes
obstacles), ``detour`` (an extra random via point, no repulsion) and ``greedy`` (ignores
obstacles entirely: collides whenever an obstacle is on the straight path).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mberil_ros.sim import spaces
from mberil_ros.sim.kinematics import ARM_JOINTS, ArmKinematics
from mberil_ros.sim.labels import DEMONSTRATORS, SUBOPTIMAL_DEMONSTRATORS
from mberil_ros.sim.model import INIT_RTM, urdf_velocity_limits
from mberil_ros.sim.scene import Episode, segment_obstacle_distance

_ELBOW_FOLD_LIMIT = -2.05  # rad, RARM/LARM_JOINT2: closer to the self-collision at ~-2.15


@dataclass(frozen=True)
class ExpertParams:
    avoid: bool = True  # plan the carrot around obstacles
    path_clearance: float = 0.075  # m, segment-to-obstacle room for the hand block
    lift_margin: float = 0.10  # m above the highest blocking obstacle
    repulsion: float = 0.6  # rad/s per unit of (1 - d/d0) pushed through J^T
    hand_repulsion: float = 0.1  # m/s per unit of (1 - d/d0) on the hand itself
    repulsion_range: float = 0.05  # m
    table_range: float = 0.025  # m
    # NEXTAGE moves its hands at a few cm/s to ~0.1 m/s in practice (its joints can do far
    # more): the cap and gain give 2-6 s reaches of 0.18-0.45 m, like real demonstrations.
    speed: float = 0.10  # m/s hand speed cap
    gain: float = 2.0  # 1/s proportional gain on the carrot
    posture: float = 0.3  # 1/s null-space pull to init_rtm
    damping: float = 0.04  # DLS lambda
    velocity_fraction: float = 0.25  # of the URDF joint velocity limits
    noise: float = 0.0  # rad, std of the OU action noise
    detour: float = 0.0  # m, size of a random via point visited first (0 = none)


class IKDemonstrator:
    """Closed-loop IK demonstrator; ``ScriptedExpert`` and the sub-optimal ones are presets."""

    def __init__(self, name: str = "expert", label: str = "expert",
                 params: ExpertParams | None = None, seed: int | None = None,
                 urdf: str | None = None) -> None:
        self.name = name
        self.label = label
        self.params = params or ExpertParams()
        self.kin = ArmKinematics(urdf)
        limits = urdf_velocity_limits(urdf)
        self._vmax = {s: np.array([limits[n] for n in js]) for s, js in ARM_JOINTS.items()}
        self._home = {s: np.array([INIT_RTM[n] for n in js]) for s, js in ARM_JOINTS.items()}
        self._rng = np.random.default_rng(seed)
        self.episode: Episode | None = None

    def reset(self, episode: Episode, seed: int | None = None) -> None:
        """Take the episode's geometry; ``seed`` re-seeds the demonstrator's own noise."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.episode = episode
        self.obs_layout = spaces.observation_layout(episode.arm)
        self.kin.set_obstacles(episode.obstacles)
        self._cmd: dict[str, np.ndarray] = {}
        self._noise = {s: np.zeros(6) for s in self.obs_layout.hands}
        self._via: dict[str, np.ndarray | None] = {s: None for s in self.obs_layout.hands}
        self._via_pending = self.params.detour > 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        lay = self.obs_layout
        q_all = obs[lay.qpos]
        q = {s: q_all[6 * i: 6 * i + 6] for i, s in enumerate(lay.hands)}
        self.kin.set_configuration(
            {n: v for s in lay.hands for n, v in zip(ARM_JOINTS[s], q[s], strict=True)})
        goals = obs[lay.goal].reshape(-1, 3)
        if self._via_pending:
            self._via_pending = False
            for s in lay.hands:
                self._via[s] = self._detour_point(self.kin.hand(s), goals[lay.hands.index(s)])
        out = [self._arm_action(s, q[s], goals[i]) for i, s in enumerate(lay.hands)]
        return np.concatenate(out)

    def act_from(self, obs: np.ndarray, last_command: np.ndarray) -> np.ndarray:
        """``act`` as if the demonstrator's own last command had been ``last_command``
        (every active arm's joints, in observation order): what it would do in another
        controller's place."""
        hands = self.obs_layout.hands
        self._cmd = {s: np.asarray(last_command[6 * i: 6 * i + 6], float).copy()
                     for i, s in enumerate(hands)}
        return self.act(obs)

    # ----- one arm -----
    def _detour_point(self, start: np.ndarray, goal: np.ndarray) -> np.ndarray:
        mid = 0.5 * (start + goal)
        offset = self._rng.normal(0.0, 1.0, 3)
        offset *= self.params.detour / (np.linalg.norm(offset) + 1e-9)
        return mid + offset

    def _carrot(self, side: str, p: np.ndarray, goal: np.ndarray) -> np.ndarray:
        via = self._via.get(side)
        if via is not None:
            if np.linalg.norm(via - p) < 0.03:
                self._via[side] = None
            else:
                return via
        obstacles = self.episode.obstacles if self.params.avoid else ()
        c = self.params.path_clearance

        def blocking(a: np.ndarray, b: np.ndarray) -> list:
            return [ob for ob in obstacles if segment_obstacle_distance(a, b, ob) < c]

        blockers = blocking(p, goal)
        if not blockers:
            return goal
        z_safe = max(max(ob.top for ob in blockers) + self.params.lift_margin, goal[2])
        above_goal = np.array([goal[0], goal[1], z_safe])
        if not blocking(p, above_goal):
            return above_goal
        return np.array([p[0], p[1], z_safe + 0.02])

    def _arm_action(self, side: str, q: np.ndarray, goal: np.ndarray) -> np.ndarray:
        prm = self.params
        kin = self.kin
        p = kin.hand(side)
        carrot = self._carrot(side, p, goal)
        v = prm.gain * (carrot - p)
        speed = np.linalg.norm(v)
        if speed > prm.speed:
            v *= prm.speed / speed
        # Close to the target (which sampling keeps clear of obstacles) repulsion would fight
        # the attraction and park the hand off target: fade it into the null space.
        near = float(np.clip(1.0 - (np.linalg.norm(goal - p) - 0.02) / 0.05, 0.0, 1.0))
        dq_rep = np.zeros(6)
        if prm.avoid and prm.repulsion > 0:
            for d, point, n, body, is_hand in kin.proximity(side, prm.repulsion_range,
                                                            prm.table_range):
                rng = prm.table_range if n[2] > 0.99 else prm.repulsion_range
                closeness = 1.0 - max(d, 0.0) / rng
                if is_hand:  # task space for the hand itself
                    v += (1.0 - near) * prm.hand_repulsion * closeness * n
                else:
                    dq_rep += (prm.repulsion * closeness
                               * (kin.point_jacobian(side, point, body).T @ n))
        # Weighted least norm: the elbow (J2) fades out of the solution as it nears the fold
        # where forearm and upper arm touch (~-2.15 rad), so lifting near the body pitches
        # the shoulder instead of folding the elbow into a self-collision.
        w = np.ones(6)
        w[2] = float(np.clip((q[2] - _ELBOW_FOLD_LIMIT) / 0.25, 0.02, 1.0))
        J = kin.hand_jacobian(side) * w
        JJt = J @ J.T + prm.damping ** 2 * np.eye(3)
        J_pinv = w[:, None] * (J.T @ np.linalg.solve(JJt, np.eye(3)))
        null = np.eye(6) - J_pinv @ kin.hand_jacobian(side)
        dq = (J_pinv @ v + null @ (prm.posture * (self._home[side] - q) + near * dq_rep)
              + (1.0 - near) * dq_rep)
        cap = prm.velocity_fraction * self._vmax[side]
        scale = np.max(np.abs(dq) / cap)
        if scale > 1.0:
            dq /= scale
        if prm.noise > 0:
            # Ornstein-Uhlenbeck noise: smooth wandering rather than per-tick jitter.
            self._noise[side] = 0.85 * self._noise[side] + self._rng.normal(0.0, prm.noise, 6)
        # Integrate on the previous command (not the measured q) so the servo's tracking lag
        # does not slow the motion; re-anchor if the arm falls behind (e.g. blocked).
        prev = self._cmd.get(side, q)
        prev = q + np.clip(prev - q, -0.05, 0.05)
        cmd = prev + dq * spaces.CONTROL_DT
        self._cmd[side] = cmd
        lo, hi = kin.range[side][:, 0], kin.range[side][:, 1]
        return np.clip(cmd + self._noise[side], lo, hi)


def ScriptedExpert(seed: int | None = None, urdf: str | None = None) -> IKDemonstrator:
    """The collision-free expert (label "expert")."""
    return IKDemonstrator("expert", "expert", ExpertParams(), seed, urdf)


# Same speed range as the expert, so a discriminator has to learn the way they move (noise,
# a needless via point, running into obstacles), not a speed difference.
_SUBOPTIMAL = {
    "noisy": ExpertParams(noise=0.02, path_clearance=0.045, repulsion=0.25, lift_margin=0.06),
    "detour": ExpertParams(detour=0.16, repulsion=0.0, path_clearance=0.05, speed=0.09),
    "greedy": ExpertParams(avoid=False),
}
assert tuple(_SUBOPTIMAL) == SUBOPTIMAL_DEMONSTRATORS  # the names live in labels.py


def make_demonstrator(name: str, seed: int | None = None, urdf: str | None = None
                      ) -> IKDemonstrator:
    """Build a demonstrator by name: "expert" or one of the sub-optimal presets."""
    if name == "expert":
        return ScriptedExpert(seed, urdf)
    if name not in _SUBOPTIMAL:
        raise ValueError(f"unknown demonstrator {name!r} (choose from {', '.join(DEMONSTRATORS)})")
    return IKDemonstrator(name, "suboptimal", replace(_SUBOPTIMAL[name]), seed, urdf)
