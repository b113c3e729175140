"""The reaching task on the MuJoCo NEXTAGE (docs/task.md).

Physics (``advance``) and control (``set_joint_targets``) are separate so a ROS sim node can
apply commands for any joints by name and step physics on its own clock; ``step`` is the
in-process convenience that does one 50 Hz control tick of both.

An episode succeeds when every active hand's flange origin is within ``tolerance`` of its
target with no collision so far (robot vs obstacles, table or its own body); it ends on
success, on the first collision, or at the suite's time limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import mujoco
import numpy as np

from mberil_ros.errors import UserError
from mberil_ros.sim import spaces
from mberil_ros.sim.model import (
    HAND_SITES,
    INIT_RTM,
    TABLE_TOP_Z,
    TARGET_BODIES,
    joint_table,
    load_model,
    obstacle_geom_names,
    urdf_velocity_limits,
)
from mberil_ros.sim.observation import build_observation
from mberil_ros.sim.scene import Episode, Obstacle, point_obstacle_distance
from mberil_ros.sim.spaces import ALL_JOINTS, MAX_OBSTACLES
from mberil_ros.sim.suites import ALL_SUITES, reachable, sample_episode


def configure_obstacles(model: mujoco.MjModel, data: mujoco.MjData,
                        obstacles: Sequence[Obstacle]) -> None:
    """Put ``obstacles`` into the model's obstacle slots (unused slots stop colliding)."""
    if len(obstacles) > MAX_OBSTACLES:
        raise UserError(f"at most {MAX_OBSTACLES} obstacles are supported, got {len(obstacles)}")
    for slot in range(MAX_OBSTACLES):
        body = model.body(f"obstacle{slot}")
        mocap = int(body.mocapid[0])
        box, sphere = (model.geom(n).id for n in obstacle_geom_names(slot))
        ob = obstacles[slot] if slot < len(obstacles) else None
        for gid, kind in ((box, "box"), (sphere, "sphere")):
            live = ob is not None and ob.type == kind
            model.geom_contype[gid] = model.geom_conaffinity[gid] = 1 if live else 0
            model.geom_rgba[gid, 3] = 1.0 if live else 0.0
            if not live:
                continue
            half = ob.half_extents
            if kind == "sphere":
                model.geom_size[gid] = (half[0], 0.0, 0.0)
                model.geom_rbound[gid] = half[0]
                model.geom_aabb[gid] = (0, 0, 0, half[0], half[0], half[0])
            else:
                model.geom_size[gid] = half
                model.geom_rbound[gid] = float(np.linalg.norm(half))
                model.geom_aabb[gid] = (0, 0, 0, *half)
        data.mocap_pos[mocap] = ob.position if ob is not None else (0.0, 0.0, -5.0)


def robot_geom_ids(model: mujoco.MjModel) -> np.ndarray:
    """Geoms that belong to the robot (everything but the table, obstacles and markers)."""
    scene = {"world", "table", *TARGET_BODIES.values()} | {
        f"obstacle{i}" for i in range(MAX_OBSTACLES)}
    return np.array([g for g in range(model.ngeom)
                     if model.body(model.geom_bodyid[g]).name not in scene], dtype=int)


class ReachingTask:
    """Seeded reaching task; see spaces.py for the observation/action layouts."""

    def __init__(self, suite: str = "train", arm: str = "right", seed: int | None = 0,
                 urdf: str | None = None, tolerance: float = 0.02,
                 time_limit: float | None = None) -> None:
        if suite not in ALL_SUITES:
            raise UserError(f"unknown suite {suite!r} (choose from {', '.join(ALL_SUITES)})")
        if arm not in spaces.ARMS:
            raise UserError(f"unknown arm {arm!r} (choose from {', '.join(spaces.ARMS)})")
        self.suite = ALL_SUITES[suite]
        self.arm = arm
        self.obs_layout = spaces.observation_layout(arm)
        self.tolerance = float(tolerance)
        self.time_limit = float(time_limit if time_limit is not None else self.suite.time_limit)
        self.model = load_model(urdf)
        self.data = mujoco.MjData(self.model)
        self._probe = mujoco.MjData(self.model)  # scratch state for sampling checks
        self._jt = joint_table(self.model)
        self._qadr = np.array([self._jt[n][0] for n in ALL_JOINTS])
        self._dadr = np.array([self._jt[n][1] for n in ALL_JOINTS])
        self._range = np.array([self._jt[n][2] for n in ALL_JOINTS])
        limits = urdf_velocity_limits(urdf)
        self._vmax = np.array([limits[n] for n in ALL_JOINTS])
        self._act = np.array([self.model.actuator(n).id for n in ALL_JOINTS])
        self._index = {n: i for i, n in enumerate(ALL_JOINTS)}
        self._layout_idx = np.array([self._index[n] for n in self.obs_layout.joints])
        self._robot_geoms = robot_geom_ids(self.model)
        self._is_robot = np.zeros(self.model.ngeom, dtype=bool)
        self._is_robot[self._robot_geoms] = True
        self._table = self.model.geom("table").id
        self._sites = {s: self.model.site(n).id for s, n in HAND_SITES.items()}
        self._rng = np.random.default_rng(seed)
        self.episode: Episode | None = None
        self._targets = np.zeros(len(ALL_JOINTS))
        self._collision: tuple[str, str] | None = None
        self._success = False

    # ----- episode set-up -----
    def reset(self, seed: int | None = None, layout: Episode | None = None) -> np.ndarray:
        """Start an episode: ``layout`` if given, else one drawn from the suite (re-seeded
        with ``seed`` when given). Returns the first observation."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        if layout is None:
            layout = sample_episode(self.suite, self.arm, self._rng, self._clearance,
                                    self._hands_at)
        elif layout.arm != self.arm:
            raise UserError(f"layout {layout.name or '?'} is for arm {layout.arm}, "
                            f"but the task runs arm {self.arm}")
        self.episode = layout
        mujoco.mj_resetData(self.model, self.data)
        configure_obstacles(self.model, self.data, layout.obstacles)
        q = self._initial_q(layout.initial_joints)
        self.data.qpos[self._qadr] = q
        self._targets = q.copy()
        self.data.ctrl[self._act] = q
        for side, body in TARGET_BODIES.items():
            mocap = int(self.model.body(body).mocapid[0])
            self.data.mocap_pos[mocap] = layout.targets.get(side, (0.0, 0.0, -5.0))
        mujoco.mj_forward(self.model, self.data)
        self._collision = self._find_collision()
        self._success = False
        return self.observation()

    def layout_problem(self, layout: Episode) -> str | None:
        """Why ``layout`` cannot be a fair episode of this task (field: reason), or None:
        a target out of the arm's comfortable reach or under the table, an obstacle that
        overlaps the arm at its start pose or covers a target, an arm that starts in
        collision with itself or the table."""
        for side, target in layout.targets.items():
            t = np.asarray(target, dtype=float)
            if not reachable(t, side):
                return (f"target: {[round(float(v), 3) for v in t]} is out of the {side} arm's "
                        f"comfortable reach")
            if t[2] < TABLE_TOP_Z:
                return f"target: z {t[2]:.3f} is under the table top ({TABLE_TOP_Z} m)"
        if self._clearance(layout.initial_joints, None) <= 0.0:
            return "initial_joints: the arm starts in collision with itself or the table"
        for k, ob in enumerate(layout.obstacles):
            if self._clearance(layout.initial_joints, ob) <= 0.0:
                return f"obstacles[{k}]: overlaps the arm at its start pose"
            for side, target in layout.targets.items():
                if point_obstacle_distance(np.asarray(target, dtype=float), ob) <= 0.0:
                    return f"obstacles[{k}]: covers the {side} target"
        return None

    def _initial_q(self, joints: Mapping[str, float]) -> np.ndarray:
        q = np.array([float(joints.get(n, INIT_RTM[n])) for n in ALL_JOINTS])
        return np.clip(q, self._range[:, 0], self._range[:, 1])

    def _hands_at(self, joints: Mapping[str, float]) -> dict[str, np.ndarray]:
        self._probe.qpos[self._qadr] = self._initial_q(joints)
        mujoco.mj_kinematics(self.model, self._probe)
        return {s: self._probe.site_xpos[i].copy() for s, i in self._sites.items()}

    def _clearance(self, joints: Mapping[str, float], ob: Obstacle | None) -> float:
        """Robot-to-``ob`` distance at ``joints``; with ``ob`` None, the robot's clearance to
        the table and itself (negative when touching)."""
        p = self._probe
        configure_obstacles(self.model, p, [ob] if ob is not None else [])
        p.qpos[self._qadr] = self._initial_q(joints)
        mujoco.mj_kinematics(self.model, p)
        if ob is None:
            mujoco.mj_collision(self.model, p)
            for c in p.contact[: p.ncon]:
                if self._is_robot[c.geom1] or self._is_robot[c.geom2]:
                    return -1.0
            other = self._table
        else:
            other = self.model.geom(obstacle_geom_names(0)[0 if ob.type == "box" else 1]).id
        fromto = np.zeros(6)
        return min(mujoco.mj_geomDistance(self.model, p, int(g), other, 0.2, fromto)
                   for g in self._robot_geoms)

    # ----- control and physics (separable for the ROS sim node) -----
    def set_joint_targets(self, targets: Mapping[str, float], dt: float = spaces.CONTROL_DT
                          ) -> dict[str, float]:
        """Set position targets for any joints by name, clamped to the joint range and to
        ``velocity limit * dt`` from the previous target. Returns the applied targets."""
        applied = {}
        for name, value in targets.items():
            i = self._index.get(name)
            if i is None:
                raise KeyError(f"unknown joint {name!r}")
            prev = self._targets[i]
            step = self._vmax[i] * dt
            v = float(np.clip(value, prev - step, prev + step))
            v = float(np.clip(v, self._range[i, 0], self._range[i, 1]))
            self._targets[i] = v
            applied[name] = v
        self.data.ctrl[self._act] = self._targets
        return applied

    def apply_action(self, action) -> np.ndarray:
        """Clamp an action vector (layout order) and make it the arm's position targets."""
        a = np.asarray(action, dtype=float).reshape(-1)
        if a.shape[0] != self.obs_layout.act_dim:
            raise ValueError(f"action has {a.shape[0]} values, expected {self.obs_layout.act_dim}")
        if not np.all(np.isfinite(a)):
            raise ValueError("action contains NaN or inf")
        idx = self._layout_idx
        step = self._vmax[idx] * spaces.CONTROL_DT
        prev = self._targets[idx]
        a = np.clip(np.clip(a, prev - step, prev + step), self._range[idx, 0], self._range[idx, 1])
        self._targets[idx] = a
        self.data.ctrl[self._act] = self._targets
        return a

    def advance(self, n: int = spaces.PHYSICS_STEPS_PER_CONTROL) -> None:
        """Step physics ``n`` times (2 ms each), remembering the first collision."""
        for _ in range(n):
            mujoco.mj_step(self.model, self.data)
            if self._collision is None and self.data.ncon:
                self._collision = self._find_collision()

    def _find_collision(self) -> tuple[str, str] | None:
        d = self.data
        for c in d.contact[: d.ncon]:
            if c.dist < 0 and (self._is_robot[c.geom1] or self._is_robot[c.geom2]):
                b1 = self.model.body(self.model.geom_bodyid[c.geom1]).name
                b2 = self.model.body(self.model.geom_bodyid[c.geom2]).name
                return (b1, b2)
        return None

    def step(self, action) -> tuple[np.ndarray, None, bool, dict]:
        """One 50 Hz tick: apply ``action``, advance 10 physics steps, evaluate.
        The reward slot is None: the task is for imitation, success is in ``info``."""
        self.apply_action(action)
        self.advance()
        info = self.status()
        self._success = info["success"]
        return self.observation(), None, self.is_done(info), info

    def is_done(self, info: dict) -> bool:
        """An episode ends on success, on the first collision, or at the time limit."""
        return bool(info["success"] or info["collision"] or self.time >= self.time_limit - 1e-9)

    # ----- state access -----
    def status(self) -> dict:
        dist = self.hand_target_distance()
        worst = max(dist.values())
        collision = self._collision is not None
        return {
            "success": (not collision) and worst <= self.tolerance,
            "collision": collision,
            "collision_pair": self._collision,
            "distance": worst,
            "distances": dist,
            "time": self.time,
        }

    def observation(self) -> np.ndarray:
        return build_observation(self.obs_layout, self.joint_positions(), self.joint_velocities(),
                                 self.goals, self.obstacles)

    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def goals(self) -> dict[str, np.ndarray]:
        """Target per active hand ("right"/"left") in the WAIST frame."""
        assert self.episode is not None, "call reset() first"
        return {s: np.asarray(self.episode.targets[s], dtype=float) for s in self.obs_layout.hands}

    @property
    def goal(self) -> np.ndarray:
        """Active hands' targets concatenated in layout order (right then left)."""
        return np.concatenate([self.goals[s] for s in self.obs_layout.hands])

    @property
    def obstacles(self) -> tuple[Obstacle, ...]:
        return self.episode.obstacles if self.episode is not None else ()

    def hand_positions(self) -> dict[str, np.ndarray]:
        return {s: self.data.site_xpos[i].copy() for s, i in self._sites.items()}

    def hand_target_distance(self) -> dict[str, float]:
        hands = self.hand_positions()
        return {s: float(np.linalg.norm(hands[s] - g)) for s, g in self.goals.items()}

    def joint_positions(self) -> dict[str, float]:
        return {n: float(self.data.qpos[a]) for n, a in zip(ALL_JOINTS, self._qadr, strict=True)}

    def joint_velocities(self) -> dict[str, float]:
        return {n: float(self.data.qvel[a]) for n, a in zip(ALL_JOINTS, self._dadr, strict=True)}

    def joint_targets(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(ALL_JOINTS, self._targets, strict=True)}

    @property
    def joint_limits(self) -> dict[str, tuple[float, float]]:
        return {n: (float(r[0]), float(r[1])) for n, r in zip(ALL_JOINTS, self._range, strict=True)}

    @property
    def velocity_limits(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(ALL_JOINTS, self._vmax, strict=True)}
