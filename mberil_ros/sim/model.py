"""Build the MuJoCo NEXTAGE scene from urdf/nextage.urdf.xacro (docs/task.md).

The robot is not modelled twice: the xacro is expanded, its ros2_control/gazebo blocks are
dropped (MuJoCo's URDF importer has no use for them), and MuJoCo imports the URDF. MjSpec
then adds what a URDF cannot say: the table, obstacle slots, target markers, hand sites and
position actuators. The result is cached as MJCF text per process, so each task instance only
pays for ``MjModel.from_xml_string``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import mujoco
import numpy as np

from mberil_ros.errors import UserError
from mberil_ros.paths import urdf_xacro
from mberil_ros.robot_description import RobotDescription, expand_xacro
from mberil_ros.sim.spaces import ALL_JOINTS, HAND_LINKS, MAX_OBSTACLES, PHYSICS_DT

# init_rtm, the usual ready pose (docs/robot.md).
INIT_RTM: dict[str, float] = {
    "CHEST_JOINT0": 0.0,
    "HEAD_JOINT0": 0.0,
    "HEAD_JOINT1": 0.0,
    "RARM_JOINT0": -0.010472,
    "RARM_JOINT1": 0.0,
    "RARM_JOINT2": -1.745329,
    "RARM_JOINT3": 0.265290,
    "RARM_JOINT4": 0.164061,
    "RARM_JOINT5": 0.055851,
    "LARM_JOINT0": 0.010472,
    "LARM_JOINT1": 0.0,
    "LARM_JOINT2": -1.745329,
    "LARM_JOINT3": -0.265290,
    "LARM_JOINT4": 0.164061,
    "LARM_JOINT5": -0.055851,
}

# Table in the WAIST frame. WAIST stands 0.97 m above the floor, so the top (z = -0.10)
# is 0.87 m high: a few cm under the hand's working heights (targets z >= 0).
TABLE_TOP_Z = -0.10
TABLE_THICKNESS = 0.04
TABLE_X = (0.15, 0.75)  # starts in front of the pedestal (WAIST box reaches x = 0.05)
TABLE_Y = (-0.60, 0.60)

HAND_BODIES = HAND_LINKS
# Tool point = the JOINT5_Link (flange) origin, the frame the reference's FK values use.
HAND_SITES = {"right": "right_hand", "left": "left_hand"}
TARGET_BODIES = {"right": "target_right", "left": "target_left"}

# Position servo gains: stiff enough to track 50 Hz targets within a tick, critically damped
# (dampratio uses each joint's reflected inertia). Shoulder joints carry the whole arm.
KP = {"0": 400.0, "1": 400.0, "2": 250.0, "3": 120.0, "4": 120.0, "5": 60.0}
KP_TORSO = 600.0
ARMATURE = 0.01  # rotor inertia (kg m^2): keeps the light wrist links well conditioned


def obstacle_geom_names(slot: int) -> tuple[str, str]:
    """(box, sphere) geom names of obstacle slot ``slot``; one of them is live at a time."""
    return f"obstacle{slot}_box", f"obstacle{slot}_sphere"


def expand_urdf(path: str | Path | None = None) -> str:
    """Expand the xacro (or read a plain URDF) and return URDF text ready for MuJoCo."""
    path = Path(path) if path is not None else urdf_xacro()
    text = expand_xacro(path)
    text = re.sub(r"<ros2_control\b.*?</ros2_control>", "", text, flags=re.S)
    text = re.sub(r"<gazebo\b.*?</gazebo>", "", text, flags=re.S)
    # fusestatic=false keeps every URDF link as its own body (the hand sites need them).
    compiler = (
        '<mujoco><compiler fusestatic="false" discardvisual="true" '
        'balanceinertia="true" strippath="false"/></mujoco>'
    )
    text, n = re.subn(r"(<robot\b[^>]*>)", r"\1" + compiler, text, count=1)
    if n != 1:
        raise UserError(f"{path}: no <robot> element")
    return text


def _build_spec(urdf_text: str, source: str) -> mujoco.MjSpec:
    try:
        spec = mujoco.MjSpec.from_string(urdf_text)
    except Exception as exc:  # noqa: BLE001
        raise UserError(
            f"cannot load URDF {source} into MuJoCo: {str(exc).splitlines()[0]}"
        ) from None
    spec.option.timestep = PHYSICS_DT
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    world = spec.worldbody
    for body in spec.bodies:
        if body.name != "world":
            body.gravcomp = 1.0  # the robot's controller compensates gravity
    names = {j.name for j in spec.joints}
    missing = [j for j in ALL_JOINTS if j not in names]
    if missing:
        raise UserError(f"URDF {source} lacks joints {missing}")
    for joint in spec.joints:
        joint.armature = ARMATURE
        kp = KP_TORSO if joint.name in ("CHEST_JOINT0", "HEAD_JOINT0", "HEAD_JOINT1") else KP[
            joint.name[-1]
        ]
        act = spec.add_actuator(name=joint.name, target=joint.name)
        act.trntype = mujoco.mjtTrn.mjTRN_JOINT
        act.set_to_position(kp=kp, dampratio=1.0, inheritrange=True)
    for side, body_name in HAND_BODIES.items():
        spec.body(body_name).add_site(name=HAND_SITES[side], size=[0.01, 0, 0])

    table = world.add_body(name="table")
    table.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        pos=[sum(TABLE_X) / 2, sum(TABLE_Y) / 2, TABLE_TOP_Z - TABLE_THICKNESS / 2],
        size=[(TABLE_X[1] - TABLE_X[0]) / 2, (TABLE_Y[1] - TABLE_Y[0]) / 2, TABLE_THICKNESS / 2],
        rgba=[0.6, 0.45, 0.3, 1],
    )
    # Obstacle slots: mocap bodies (moved per episode) each with a box and a sphere geom;
    # the task switches the unused one off (contype 0) and sets sizes in the model.
    for slot in range(MAX_OBSTACLES):
        body = world.add_body(name=f"obstacle{slot}", mocap=True, pos=[0, 0, -5])
        box, sphere = obstacle_geom_names(slot)
        body.add_geom(name=box, type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.03] * 3,
                      rgba=[0.8, 0.2, 0.2, 1])
        body.add_geom(name=sphere, type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.03, 0, 0],
                      rgba=[0.8, 0.2, 0.2, 1])
    for name in TARGET_BODIES.values():
        body = world.add_body(name=name, mocap=True, pos=[0, 0, -5])
        body.add_site(name=name, size=[0.02, 0, 0], rgba=[0.1, 0.8, 0.1, 0.6])
    return spec


@functools.lru_cache(maxsize=4)
def scene_xml(urdf_path: str | None = None) -> str:
    """MJCF text of the whole scene (robot + table + obstacle slots), cached per process."""
    source = urdf_path or str(urdf_xacro())
    spec = _build_spec(expand_urdf(urdf_path), source)
    spec.compile()
    return spec.to_xml()


def load_model(urdf_path: str | None = None) -> mujoco.MjModel:
    """A fresh MjModel of the scene (each task owns one: obstacle sizes are edited in it)."""
    return mujoco.MjModel.from_xml_string(scene_xml(urdf_path))


def joint_table(model: mujoco.MjModel) -> dict[str, tuple[int, int, np.ndarray]]:
    """name -> (qpos address, dof address, range) for the 15 robot joints."""
    out = {}
    for name in ALL_JOINTS:
        j = model.joint(name)
        out[name] = (int(j.qposadr[0]), int(j.dofadr[0]), np.array(j.range))
    return out


def urdf_velocity_limits(urdf_path: str | None = None) -> dict[str, float]:
    """Per-joint velocity limits (rad/s) read from the expanded URDF's <limit> tags."""
    return _velocity_limits(urdf_path)


@functools.lru_cache(maxsize=4)
def _velocity_limits(urdf_path: str | None) -> dict[str, float]:
    robot = RobotDescription(expand_xacro(urdf_path), source=str(urdf_path or urdf_xacro()))
    return {name: j.velocity for name, j in robot.joints.items() if j.velocity > 0}
