"""The expanded NEXTAGE description against the joint table of docs/robot.md."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mberil_ros.errors import UserError
from mberil_ros.robot_description import RobotDescription, expand_xacro

# name: (parent, child, xyz, rpy, axis, lower, upper, effort, velocity) — the reference table.
REFERENCE = {
    "CHEST_JOINT0": ("WAIST", "CHEST_JOINT0_Link", (0, 0, 0), (0, 0, 0), "z",
                     -2.84489, 2.84489, 100, 1.91986),
    "HEAD_JOINT0": ("CHEST_JOINT0_Link", "HEAD_JOINT0_Link", (0, 0, 0.5695), (0, 0, 0), "z",
                    -1.22173, 1.22173, 100, 2.61799),
    "HEAD_JOINT1": ("HEAD_JOINT0_Link", "HEAD_JOINT1_Link", (0, 0, 0), (0, 0, 0), "y",
                    -0.349066, 1.22173, 100, 4.36332),
    "RARM_JOINT0": ("CHEST_JOINT0_Link", "RARM_JOINT0_Link", (0, -0.145, 0.370296),
                    (0.261799, 0, 0), "z", -1.53589, 1.53589, 150, 3.00197),
    "RARM_JOINT1": ("RARM_JOINT0_Link", "RARM_JOINT1_Link", (0, 0, 0), (0, 0, 0), "y",
                    -2.44346, 1.0472, 200, 2.32129),
    "RARM_JOINT2": ("RARM_JOINT1_Link", "RARM_JOINT2_Link", (0, -0.095, -0.25), (0, 0, 0), "y",
                    -2.75762, 0, 100, 3.75246),
    "RARM_JOINT3": ("RARM_JOINT2_Link", "RARM_JOINT3_Link", (-0.03, 0, 0), (0, 0, 0), "z",
                    -2.87979, 1.8326, 100, 4.60767),
    "RARM_JOINT4": ("RARM_JOINT3_Link", "RARM_JOINT4_Link", (0, 0, -0.235), (0, 0, 0), "y",
                    -1.74533, 1.74533, 100, 3.90954),
    "RARM_JOINT5": ("RARM_JOINT4_Link", "RARM_JOINT5_Link", (-0.047, 0, -0.09), (0, 0, 0), "x",
                    -2.84489, 2.84489, 100, 5.23599),
    "LARM_JOINT0": ("CHEST_JOINT0_Link", "LARM_JOINT0_Link", (0, 0.145, 0.370296),
                    (-0.261799, 0, 0), "z", -1.53589, 1.53589, 150, 3.00197),
    "LARM_JOINT1": ("LARM_JOINT0_Link", "LARM_JOINT1_Link", (0, 0, 0), (0, 0, 0), "y",
                    -2.44346, 1.0472, 200, 2.32129),
    "LARM_JOINT2": ("LARM_JOINT1_Link", "LARM_JOINT2_Link", (0, 0.095, -0.25), (0, 0, 0), "y",
                    -2.75762, 0, 100, 3.99680),
    "LARM_JOINT3": ("LARM_JOINT2_Link", "LARM_JOINT3_Link", (-0.03, 0, 0), (0, 0, 0), "z",
                    -1.8326, 2.87979, 100, 4.60767),
    "LARM_JOINT4": ("LARM_JOINT3_Link", "LARM_JOINT4_Link", (0, 0, -0.235), (0, 0, 0), "y",
                    -1.74533, 1.74533, 100, 3.90954),
    "LARM_JOINT5": ("LARM_JOINT4_Link", "LARM_JOINT5_Link", (-0.047, 0, -0.09), (0, 0, 0), "x",
                    -2.84489, 2.84489, 100, 5.23599),
}
AXES = {"x": (1, 0, 0), "y": (0, 1, 0), "z": (0, 0, 1)}

# Forward-kinematics regression values at the zero pose (WAIST frame, m).
FK_ZERO_POSE = {
    "LARM_JOINT0_Link": (0, 0.145, 0.3703),
    "LARM_JOINT5_Link": (-0.077, 0.0879, -0.2097),
    "RARM_JOINT5_Link": (-0.077, -0.0879, -0.2097),
    "HEAD_JOINT1_Link": (0, 0, 0.5695),
}


@pytest.fixture(scope="module")
def robot() -> RobotDescription:
    return RobotDescription.from_xacro(hardware="mock")


def test_root_is_waist_and_all_joints_present(robot: RobotDescription) -> None:
    assert robot.root == "WAIST"
    assert sorted(robot.movable_joints) == sorted(REFERENCE)
    assert all(robot.joints[n].type == "revolute" for n in REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_joint_matches_reference_table(robot: RobotDescription, name: str) -> None:
    parent, child, xyz, rpy, axis, lower, upper, effort, velocity = REFERENCE[name]
    j = robot.joints[name]
    assert (j.parent, j.child) == (parent, child)
    np.testing.assert_allclose(j.xyz, xyz, atol=1e-9)
    np.testing.assert_allclose(j.rpy, rpy, atol=1e-9)
    assert j.axis == AXES[axis]
    limits = (j.lower, j.upper, j.effort, j.velocity)
    assert limits == pytest.approx((lower, upper, effort, velocity))


def test_every_link_has_inertial_and_geometry() -> None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(expand_xacro(hardware="mock"))
    for link in root.findall("link"):
        if link.get("name") == "WAIST":
            continue  # fixed base
        inertial = link.find("inertial")
        assert inertial is not None, link.get("name")
        assert float(inertial.find("mass").get("value")) > 0
        assert link.find("collision/geometry") is not None, link.get("name")


@pytest.mark.parametrize("link,expected", sorted(FK_ZERO_POSE.items()))
def test_zero_pose_forward_kinematics(robot: RobotDescription, link: str, expected) -> None:
    position = robot.forward_kinematics({})[link][:3, 3]
    assert np.max(np.abs(position - np.array(expected))) < 1e-3  # 1 mm


def test_forward_kinematics_moves_with_joint() -> None:
    robot = RobotDescription.from_xacro()
    base = robot.forward_kinematics({})["RARM_JOINT5_Link"][:3, 3]
    moved = robot.forward_kinematics({"CHEST_JOINT0": math.pi / 2})["RARM_JOINT5_Link"][:3, 3]
    # A quarter turn of the waist rotates the hand about z: (x, y) -> (-y, x).
    np.testing.assert_allclose(moved[:2], [-base[1], base[0]], atol=1e-9)
    np.testing.assert_allclose(moved[2], base[2], atol=1e-9)


@pytest.mark.parametrize(
    "hardware,plugin",
    [
        ("mock", "mock_components/GenericSystem"),
        ("gazebo", "gz_ros2_control/GazeboSimSystem"),
        ("real", "my_lab/NextageHardware"),
    ],
)
def test_xacro_expands_for_each_hardware(hardware: str, plugin: str, tmp_path) -> None:
    import xml.etree.ElementTree as ET

    controllers = tmp_path / "controllers.yaml"
    xml = expand_xacro(
        hardware=hardware, real_plugin="my_lab/NextageHardware", controllers_file=str(controllers)
    )
    root = ET.fromstring(xml)
    control = root.find("ros2_control")
    assert control.find("hardware/plugin").text.strip() == plugin
    joints = [j.get("name") for j in control.findall("joint")]
    assert sorted(joints) == sorted(REFERENCE)
    for j in control.findall("joint"):
        assert j.find("command_interface").get("name") == "position"
        assert {s.get("name") for s in j.findall("state_interface")} == {"position", "velocity"}
    gz = root.find("gazebo/plugin")
    if hardware == "gazebo":
        assert gz.get("filename") == "gz_ros2_control-system"
        assert gz.find("parameters").text.strip() == str(controllers)
    else:
        assert gz is None


def test_mock_hardware_starts_at_init_rtm() -> None:
    import xml.etree.ElementTree as ET

    control = ET.fromstring(expand_xacro(hardware="mock")).find("ros2_control")
    initial = {
        j.get("name"): float(j.find("state_interface/param").text) for j in control.findall("joint")
    }
    assert initial["RARM_JOINT2"] == pytest.approx(-1.745329)
    assert initial["LARM_JOINT3"] == pytest.approx(-0.265290)
    assert initial["CHEST_JOINT0"] == 0.0


def test_attach_to_world_for_gazebo() -> None:
    robot = RobotDescription(expand_xacro(hardware="gazebo", attach_to_world="true",
                                          controllers_file="/x.yaml"))
    assert robot.root == "world"
    assert robot.forward_kinematics({})["WAIST"][2, 3] == pytest.approx(0.97)


def test_unknown_hardware_is_a_one_line_error() -> None:
    with pytest.raises(UserError, match="hardware must be mock, gazebo or real") as info:
        expand_xacro(hardware="bogus")
    assert "\n" not in str(info.value)


def test_missing_urdf_path_is_a_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="not found"):
        expand_xacro(tmp_path / "nope.urdf.xacro")


def test_controller_yaml_claims_arm_joints() -> None:
    import yaml

    from mberil_ros.paths import config_file

    cfg = yaml.safe_load(config_file("ros2_controllers.yaml").read_text())
    manager = cfg["controller_manager"]["ros__parameters"]
    assert manager["forward_position_controller"]["type"] == (
        "forward_command_controller/ForwardCommandController"
    )
    assert manager["joint_state_broadcaster"]["type"] == (
        "joint_state_broadcaster/JointStateBroadcaster"
    )
    arm = [f"{s}ARM_JOINT{i}" for s in "RL" for i in range(6)]
    assert cfg["forward_position_controller"]["ros__parameters"]["joints"] == arm
    assert cfg["forward_position_controller"]["ros__parameters"]["interface_name"] == "position"
    assert cfg["joint_trajectory_controller"]["ros__parameters"]["joints"] == arm
