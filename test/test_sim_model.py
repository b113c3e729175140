"""The MuJoCo scene is generated from the URDF and keeps its joints and limits."""

import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest

from mberil_ros.errors import UserError
from mberil_ros.sim import spaces
from mberil_ros.sim.model import expand_urdf, load_model, scene_xml


def test_model_has_the_15_urdf_joints_with_urdf_ranges():
    root = ET.fromstring(expand_urdf())
    urdf = {j.attrib["name"]: j.find("limit").attrib for j in root.iter("joint")
            if j.attrib.get("type") == "revolute"}
    assert set(urdf) == set(spaces.ALL_JOINTS)
    m = load_model()
    names = {m.joint(i).name for i in range(m.njnt)}
    assert names == set(spaces.ALL_JOINTS)
    for name, lim in urdf.items():
        j = m.joint(name)
        assert m.jnt_limited[j.id]
        np.testing.assert_allclose(j.range, [float(lim["lower"]), float(lim["upper"])])
        assert m.actuator(name).trntype == mujoco.mjtTrn.mjTRN_JOINT
    assert m.opt.timestep == pytest.approx(spaces.PHYSICS_DT)


def test_forward_kinematics_matches_reference_zero_pose():
    # docs/robot.md regression values (zero pose, WAIST frame)
    m = load_model()
    d = mujoco.MjData(m)
    mujoco.mj_kinematics(m, d)
    np.testing.assert_allclose(d.body("RARM_JOINT5_Link").xpos, [-0.077, -0.0879, -0.2097],
                               atol=5e-4)
    np.testing.assert_allclose(d.body("LARM_JOINT0_Link").xpos, [0, 0.145, 0.3703], atol=5e-4)
    np.testing.assert_allclose(d.body("HEAD_JOINT1_Link").xpos, [0, 0, 0.5695], atol=5e-4)


def test_scene_is_cached_and_has_table_obstacles_targets():
    assert scene_xml() is scene_xml()
    m = load_model()
    for name in ("table", "obstacle0_box", "obstacle2_sphere"):
        assert m.geom(name).id >= 0
    assert m.nmocap == spaces.MAX_OBSTACLES + 2


def test_broken_urdf_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.urdf"
    bad.write_text("<robot name='x'><link name='a'></robot>")
    with pytest.raises(UserError):
        scene_xml(str(bad))
    with pytest.raises(UserError, match="not found"):
        scene_xml(str(tmp_path / "missing.urdf.xacro"))
