"""scripts/obstacle_counterfactual.py: a lowered box keeps its footprint and stands on the
table, and the policy-side variant shows exactly that box in the observation."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mberil_ros.sim import spaces
from mberil_ros.sim.model import TABLE_TOP_Z
from mberil_ros.sim.observation import obstacle_features
from mberil_ros.sim.scene import Obstacle
from mberil_ros.sim.task import ReachingTask

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "obstacle_counterfactual.py"
_spec = importlib.util.spec_from_file_location("obstacle_counterfactual", _PATH)
cf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cf)


def test_lowered_box_keeps_its_footprint_on_the_table():
    tall = Obstacle.box((0.3, -0.1, TABLE_TOP_Z + 0.14), (0.05, 0.06, 0.28))  # top 0.18
    low = cf.lowered_box(tall, 0.13)
    assert low.top == pytest.approx(0.13)
    assert low.position[2] - low.half_extents[2] == pytest.approx(TABLE_TOP_Z)
    assert low.size[:2] == tall.size[:2] and low.position[:2] == tall.position[:2]
    short = Obstacle.box((0.3, -0.1, TABLE_TOP_Z + 0.05), (0.05, 0.05, 0.10))
    ball = Obstacle.sphere((0.3, -0.3, 0.15), 0.03)
    assert cf.lowered_box(short, 0.13) == short  # already lower
    assert cf.lowered_box(ball, 0.13) == ball  # spheres are left alone


def test_the_policy_sees_the_lowered_layout():
    task = ReachingTask("heldout_obstacles")
    task.reset(seed=3)
    seen = []

    class Record:
        def start(self, task, seed):
            pass

        def act(self, obs):
            seen.append(np.array(obs))
            return np.zeros(6)

    wrapper = cf.SeesLowered(Record(), task, 0.13)
    wrapper.start(task, 3)
    obs = task.observation()
    wrapper.act(obs)
    expected = obstacle_features(cf.lowered_layout(task.episode, 0.13).obstacles)
    got = seen[0][task.obs_layout.obstacles]
    assert np.allclose(got, expected)
    assert not np.allclose(obs[task.obs_layout.obstacles], expected)  # something was taller
    assert np.allclose(np.delete(seen[0], task.obs_layout.obstacles),
                       np.delete(obs, task.obs_layout.obstacles))
    assert spaces.MAX_OBSTACLES * spaces.OBSTACLE_WIDTH == len(expected)
