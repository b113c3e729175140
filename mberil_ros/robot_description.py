"""The NEXTAGE description: xacro expansion, a small URDF joint table and forward kinematics.

One source of truth (urdf/nextage.urdf.xacro) serves Gazebo/ros2_control, the embedded MuJoCo
simulator and the safety limits of the nodes, so everything here is read from the URDF rather
than restated.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mberil_ros.errors import UserError
from mberil_ros.paths import urdf_xacro


def expand_xacro(path: str | Path | None = None, **args: str) -> str:
    """Expand a xacro file to URDF text (a plain .urdf is read as it is); ``args`` are xacro
    args (``hardware='mock'``...)."""
    path = Path(path) if path is not None else urdf_xacro()
    if not path.is_file():
        raise UserError(f"{path}: URDF/xacro file not found")
    if not path.name.endswith(".xacro"):
        return path.read_text()
    import xacro  # deferred: only needed here, and its import is slowish

    try:
        doc = xacro.process_file(str(path), mappings={k: str(v) for k, v in args.items()})
    except Exception as exc:  # noqa: BLE001 - xacro raises many types; report them in one line
        message = " ".join(str(exc).split())
        raise UserError(f"{path}: xacro expansion failed: {message}") from None
    return doc.toxml()


@dataclass(frozen=True)
class JointSpec:
    name: str
    type: str
    parent: str
    child: str
    xyz: tuple[float, float, float]
    rpy: tuple[float, float, float]
    axis: tuple[float, float, float]
    lower: float
    upper: float
    effort: float
    velocity: float


def _floats(text: str | None, default: str = "0 0 0") -> tuple[float, ...]:
    return tuple(float(v) for v in (text or default).split())


def rpy_matrix(rpy: tuple[float, float, float]) -> np.ndarray:
    """URDF fixed-axis roll-pitch-yaw: R = Rz(yaw) Ry(pitch) Rx(roll)."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def axis_angle_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


class RobotDescription:
    """Joint table and forward kinematics of a (serial-tree) URDF."""

    def __init__(self, urdf_xml: str, source: str = "<urdf>") -> None:
        try:
            root = ET.fromstring(urdf_xml)
        except ET.ParseError as exc:
            raise UserError(f"{source}: not valid URDF XML: {exc}") from None
        self.links = [link.get("name") for link in root.findall("link")]
        self.joints: dict[str, JointSpec] = {}
        for j in root.findall("joint"):
            origin = j.find("origin")
            limit = j.find("limit")
            axis = j.find("axis")
            self.joints[j.get("name")] = JointSpec(
                name=j.get("name"),
                type=j.get("type"),
                parent=j.find("parent").get("link"),
                child=j.find("child").get("link"),
                xyz=_floats(origin.get("xyz") if origin is not None else None),
                rpy=_floats(origin.get("rpy") if origin is not None else None),
                axis=_floats(axis.get("xyz") if axis is not None else None, "1 0 0"),
                lower=float(limit.get("lower", 0)) if limit is not None else 0.0,
                upper=float(limit.get("upper", 0)) if limit is not None else 0.0,
                effort=float(limit.get("effort", 0)) if limit is not None else 0.0,
                velocity=float(limit.get("velocity", 0)) if limit is not None else 0.0,
            )
        children = {j.child for j in self.joints.values()}
        roots = [name for name in self.links if name not in children]
        if len(roots) != 1:
            raise UserError(f"{source}: expected one root link, found {roots}")
        self.root = roots[0]
        self._by_parent: dict[str, list[JointSpec]] = {}
        for j in self.joints.values():
            self._by_parent.setdefault(j.parent, []).append(j)

    @classmethod
    def from_xacro(cls, path: str | Path | None = None, **args: str) -> RobotDescription:
        return cls(expand_xacro(path, **args), source=str(path or urdf_xacro()))

    @property
    def movable_joints(self) -> list[str]:
        return [n for n, j in self.joints.items() if j.type in ("revolute", "continuous")]

    def forward_kinematics(self, q: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """4x4 pose of every link in the root frame; joints missing from ``q`` are at 0."""
        q = q or {}
        poses = {self.root: np.eye(4)}
        stack = [self.root]
        while stack:
            parent = stack.pop()
            for j in self._by_parent.get(parent, []):
                local = np.eye(4)
                local[:3, :3] = rpy_matrix(j.rpy)
                local[:3, 3] = j.xyz
                if j.type in ("revolute", "continuous"):
                    motion = np.eye(4)
                    motion[:3, :3] = axis_angle_matrix(np.array(j.axis), q.get(j.name, 0.0))
                    local = local @ motion
                poses[j.child] = poses[parent] @ local
                stack.append(j.child)
        return poses
