"""Layouts YAML: loads into the task; bad content is a one-line error naming file + field."""

import numpy as np
import pytest

from mberil_ros.errors import UserError
from mberil_ros.sim.layouts import load_layouts
from mberil_ros.sim.spaces import MAX_OBSTACLES, OBSTACLE_FIELDS, observation_layout
from mberil_ros.sim.task import ReachingTask

GOOD = """
layouts:
  - name: shelf_left
    arm: right
    initial_joints: {RARM_JOINT0: -0.01, RARM_JOINT2: -1.745}
    target: [0.35, -0.20, 0.05]
    obstacles:
      - {type: box, position: [0.30, -0.10, 0.05], size: [0.05, 0.05, 0.20]}
      - {type: sphere, position: [0.25, -0.25, 0.10], radius: 0.04}
  - arm: both
    target: {right: [0.4, -0.2, 0.05], left: [0.4, 0.2, 0.05]}
"""


def test_good_layouts_load_into_the_task(tmp_path):
    f = tmp_path / "layouts.yaml"
    f.write_text(GOOD)
    eps = load_layouts(f)
    assert [e.name for e in eps] == ["shelf_left", "layout1"]
    task = ReachingTask("train", arm="right")
    obs = task.reset(layout=eps[0])
    np.testing.assert_allclose(obs[task.obs_layout.goal], [0.35, -0.20, 0.05])
    np.testing.assert_allclose(obs[task.obs_layout.obstacles].reshape(MAX_OBSTACLES, -1),
                               [[0.30, -0.10, 0.05, 0.025, 0.025, 0.10, 0, 1],
                                [0.25, -0.25, 0.10, 0.04, 0.04, 0.04, 1, 1],
                                [0] * len(OBSTACLE_FIELDS)])
    assert task.obstacles[1].type == "sphere" and task.obstacles[1].radius == pytest.approx(0.04)
    assert task.joint_positions()["RARM_JOINT0"] == pytest.approx(-0.01)
    assert task.model.geom("obstacle0_box").size == pytest.approx([0.025, 0.025, 0.10])
    both = ReachingTask("train", arm="both")
    assert both.reset(layout=eps[1]).shape == (observation_layout("both").obs_dim,)


@pytest.mark.parametrize("body,field", [
    ("layouts: [{target: [0.3, 0.1]}]", "layouts[0].target"),
    ("layouts: [{arm: up, target: [0.3, 0.1, 0]}]", "layouts[0].arm"),
    ("layouts: [{target: [0.3, -0.1, 0], initial_joints: {FOO: 1}}]",
     "layouts[0].initial_joints.FOO"),
    ("layouts: [{target: [0.3, -0.1, 0], obstacles: [{type: cone, position: [0, 0, 0]}]}]",
     "layouts[0].obstacles[0].type"),
    ("layouts: [{target: [0.3, -0.1, 0], obstacles: [{type: sphere, position: [0, 0, 0], "
     "radius: -1}]}]", "layouts[0].obstacles[0].radius"),
    ("layouts: [{target: [0.3, -0.1, 0], obstacles: [{type: box, position: [0, 0, 0]}]}]",
     "layouts[0].obstacles[0].size"),
    ("layout: []", "layouts"),
    ("layouts: [{target: [0, 0, 0]}, {arm: both, target: [0, 0, 0]}]", "layouts[1].target"),
    ("layouts: [\n  - {target: [0, 0, 0]\n", "line"),
])
def test_bad_layouts_name_file_and_field(tmp_path, body, field):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(UserError) as exc:
        load_layouts(f)
    msg = str(exc.value)
    assert "\n" not in msg and str(f) in msg and field in msg


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        load_layouts(tmp_path / "nope.yaml")


@pytest.mark.parametrize("target,obstacle,needle", [
    ([0.90, -0.25, 0.06], None, "layouts[0].target: [0.9, -0.25, 0.06] is out of the right"),
    ([0.38, -0.25, -0.20], None, "layouts[0].target: z -0.200 is under the table"),
    ([0.38, -0.25, 0.06], "{type: box, position: [0.25, -0.16, 0.05], size: [0.2, 0.2, 0.2]}",
     "layouts[0].obstacles[0]: overlaps the arm at its start pose"),
    ([0.38, -0.40, 0.02], "{type: sphere, position: [0.38, -0.40, 0.02], radius: 0.03}",
     "layouts[0].obstacles[0]: covers the right target"),
])
def test_layouts_the_arm_cannot_fairly_run_are_one_line_errors(tmp_path, target, obstacle,
                                                                needle):
    f = tmp_path / "scene.yaml"
    obstacles = f"\n    obstacles: [{obstacle}]" if obstacle else ""
    f.write_text(f"layouts:\n  - target: {target}{obstacles}\n")
    with pytest.raises(UserError) as err:
        load_layouts(f)
    assert str(err.value) == f"{f}: {needle}" or str(err.value).startswith(f"{f}: {needle}")
    assert "\n" not in str(err.value)
    assert load_layouts(f, check=False)  # the file itself is well-formed
