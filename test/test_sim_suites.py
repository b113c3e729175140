"""Suite regions: held-out factors provably disjoint from train; samples stay inside."""

import itertools

import numpy as np

from mberil_ros.sim.model import INIT_RTM
from mberil_ros.sim.spaces import MAX_OBSTACLES, RARM_JOINTS
from mberil_ros.sim.suites import SUITES, Box, obstacle_params
from mberil_ros.sim.task import ReachingTask


def test_box_disjointness_logic():
    a = Box((0, 0), (1, 1))
    assert not a.disjoint(Box((0.5, 0.5), (2, 2)))
    assert a.disjoint(Box((0.5, 1.1), (2, 2)))  # one separated axis suffices
    assert not a.disjoint(Box((1, 1), (2, 2)))  # closed boxes touching share a point


def test_heldout_regions_do_not_overlap_train():
    train = SUITES["train"]
    assert SUITES["heldout_init"].init_offset.disjoint(train.init_offset)
    assert SUITES["heldout_obstacles"].obstacle.disjoint(train.obstacle)
    # pairwise over all three suites for the factor each held-out suite varies
    for a, b in itertools.combinations(SUITES.values(), 2):
        if "init" in (a.name + b.name):
            assert a.init_offset.disjoint(b.init_offset) or a.init_offset == b.init_offset


def test_samples_lie_in_their_suites_regions():
    for name, suite in SUITES.items():
        task = ReachingTask(name, seed=5)
        other = SUITES["train"] if name != "train" else SUITES["heldout_obstacles"]
        n_obstacles = 0
        for ep in range(25):
            task.reset(seed=ep)
            e = task.episode
            off = np.array([e.initial_joints[j] - INIT_RTM[j] for j in RARM_JOINTS])
            assert suite.init_offset.contains(off)
            assert suite.target.contains(e.targets["right"])
            assert len(e.obstacles) <= MAX_OBSTACLES
            for ob in e.obstacles:
                assert suite.obstacle.contains(obstacle_params(ob))
                n_obstacles += 1
            if name == "heldout_init":
                assert not other.init_offset.contains(off)
            if name == "heldout_obstacles":
                assert all(not other.obstacle.contains(obstacle_params(o)) for o in e.obstacles)
            assert not task.status()["collision"]  # every start is collision-free
        assert n_obstacles > 10
