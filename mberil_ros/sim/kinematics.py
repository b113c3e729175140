"""Kinematic queries on the scene model for the demonstrators: hand position, Jacobians and
closest points between arm links and obstacles (MuJoCo's mj_jac / mj_geomDistance).

It owns its own MjModel + MjData, so a demonstrator never touches the simulated state: it
sees the robot only through the observation, as it would through ROS topics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import mujoco
import numpy as np

from mberil_ros.sim.model import HAND_BODIES, HAND_SITES, INIT_RTM, load_model, obstacle_geom_names
from mberil_ros.sim.scene import Obstacle
from mberil_ros.sim.spaces import ALL_JOINTS, LARM_JOINTS, MAX_OBSTACLES, RARM_JOINTS
from mberil_ros.sim.task import configure_obstacles

ARM_JOINTS = {"right": RARM_JOINTS, "left": LARM_JOINTS}
# Links checked for obstacle proximity: upper arm to hand (the shoulder housing stays put).
_LINKS = ("JOINT1_Link", "JOINT2_Link", "JOINT3_Link", "JOINT4_Link", "JOINT5_Link")


class ArmKinematics:
    def __init__(self, urdf: str | None = None) -> None:
        self.model = load_model(urdf)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._qadr = {n: int(m.joint(n).qposadr[0]) for n in ALL_JOINTS}
        self._dadr = {s: np.array([int(m.joint(n).dofadr[0]) for n in js])
                      for s, js in ARM_JOINTS.items()}
        self.range = {s: np.array([m.joint(n).range for n in js]) for s, js in ARM_JOINTS.items()}
        self._site = {s: m.site(n).id for s, n in HAND_SITES.items()}
        self._hand_body = {s: m.body(n).id for s, n in HAND_BODIES.items()}
        prefix = {"right": "RARM_", "left": "LARM_"}
        self.link_geoms = {
            s: [(g, int(m.geom_bodyid[g])) for g in range(m.ngeom)
                if m.body(m.geom_bodyid[g]).name in {prefix[s] + k for k in _LINKS}]
            for s in ARM_JOINTS
        }
        self.table = m.geom("table").id
        self.obstacle_geoms: list[int] = []
        self._jacp = np.zeros((3, m.nv))
        self._fromto = np.zeros(6)
        self.set_configuration(INIT_RTM)

    def set_obstacles(self, obstacles: Sequence[Obstacle]) -> None:
        configure_obstacles(self.model, self.data, obstacles)
        self.obstacle_geoms = []
        for slot, ob in enumerate(obstacles[:MAX_OBSTACLES]):
            box, sphere = obstacle_geom_names(slot)
            self.obstacle_geoms.append(self.model.geom(box if ob.type == "box" else sphere).id)

    def set_configuration(self, q: Mapping[str, float]) -> None:
        for n, v in q.items():
            self.data.qpos[self._qadr[n]] = v
        # kinematics for positions, comPos for the Jacobians
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def hand(self, side: str) -> np.ndarray:
        return self.data.site_xpos[self._site[side]].copy()

    def point_jacobian(self, side: str, point: np.ndarray, body: int) -> np.ndarray:
        """3x6 Jacobian of a point fixed to ``body`` w.r.t. the arm's six joints."""
        mujoco.mj_jac(self.model, self.data, self._jacp, None, point, body)
        return self._jacp[:, self._dadr[side]].copy()

    def hand_jacobian(self, side: str) -> np.ndarray:
        return self.point_jacobian(side, self.hand(side), self._hand_body[side])

    def proximity(self, side: str, distmax: float, table_distmax: float):
        """Yield (distance, arm point, direction away from the obstacle, body id, is_hand)
        for each arm link closer than distmax to an obstacle (table_distmax to the table)."""
        for g, body in self.link_geoms[side]:
            others = [(o, distmax) for o in self.obstacle_geoms] + [(self.table, table_distmax)]
            for o, dmax in others:
                d = mujoco.mj_geomDistance(self.model, self.data, g, o, dmax, self._fromto)
                if d >= dmax:
                    continue
                a, b = self._fromto[:3].copy(), self._fromto[3:].copy()
                n = a - b
                norm = np.linalg.norm(n)
                if norm < 1e-9:  # touching: push away from the obstacle centre
                    n = a - self.data.geom_xpos[o]
                    norm = np.linalg.norm(n) + 1e-9
                yield d, a, n / norm, body, body == self._hand_body[side]
