"""Suite regions: held-out factors provably disjoint from train; samples stay inside; the
straight hand path is often blocked; targets are never close to the start hand."""

import itertools
from dataclasses import replace

import numpy as np
import pytest

from mberil_ros.errors import UserError
from mberil_ros.sim.model import INIT_RTM
from mberil_ros.sim.scene import segment_obstacle_distance
from mberil_ros.sim.spaces import MAX_OBSTACLES, RARM_JOINTS
from mberil_ros.sim.suites import (
    ALL_SUITES,
    MIN_START_TARGET_DISTANCE,
    SHIFT_SUITES,
    SUITES,
    Box,
    obstacle_params,
    on_straight_path,
    reachable,
    suite_names,
)
from mberil_ros.sim.task import ReachingTask

X, Y, TOP, HALF = range(4)  # obstacle parameter axes


def test_box_disjointness_logic():
    a = Box((0, 0), (1, 1))
    assert not a.disjoint(Box((0.5, 0.5), (2, 2)))
    assert a.disjoint(Box((0.5, 1.1), (2, 2)))  # one separated axis suffices
    assert not a.disjoint(Box((1, 1), (2, 2)))  # closed boxes touching share a point
    assert a.disjoint_axes(Box((2, 2), (3, 3))) == [0, 1]


def test_heldout_regions_do_not_overlap_train():
    train = SUITES["train"]
    assert SUITES["heldout_init"].init_offset.disjoint(train.init_offset)
    held = SUITES["heldout_obstacles"].obstacle
    # Placement, not only size: disjoint in position (y) and in height (top), while the
    # sizes overlap on purpose.
    axes = held.disjoint_axes(train.obstacle)
    assert Y in axes and TOP in axes and HALF not in axes
    # Each held-out suite shares train's other factors exactly.
    assert SUITES["heldout_init"].obstacle == train.obstacle
    assert SUITES["heldout_obstacles"].init_offset == train.init_offset
    for a, b in itertools.combinations(SUITES.values(), 2):
        assert a.init_offset.disjoint(b.init_offset) or a.init_offset == b.init_offset
        assert a.obstacle.disjoint(b.obstacle) or a.obstacle == b.obstacle


def _inside_train_apart_from(suite, held, region: str) -> None:
    """A shift suite's ``region`` box (init_offset or obstacle) lies inside train's and apart
    from the held-out suite's; its other regions are train's."""
    train = SUITES["train"]
    box = getattr(suite, region)
    assert getattr(train, region).contains(box.lo)
    assert getattr(train, region).contains(box.hi)
    assert box.disjoint(getattr(held, region))
    for other in {"init_offset", "obstacle", "target"} - {region}:
        assert getattr(suite, other) == getattr(train, other), other


def test_shift_suites_repeat_the_obstacle_shift_inside_train():
    """shift_fit / shift_check: both inside train's obstacle box (so neither ever draws a
    held-out obstacle), apart from each other in y and top like train and heldout_obstacles,
    with train's starts and targets."""
    fit, check = SHIFT_SUITES["shift_fit"], SHIFT_SUITES["shift_check"]
    for suite in (fit, check):
        _inside_train_apart_from(suite, SUITES["heldout_obstacles"], "obstacle")
    axes = check.obstacle.disjoint_axes(fit.obstacle)
    assert Y in axes and TOP in axes and HALF not in axes
    # the check side is the held-out side: nearer the body and taller
    assert check.obstacle.lo[Y] > fit.obstacle.hi[Y]
    assert check.obstacle.lo[TOP] > fit.obstacle.hi[TOP]
    assert check.obstacle_count[0] >= 1
    assert not set(SHIFT_SUITES) & set(SUITES)


def test_init_shift_suites_repeat_the_start_pose_shift_inside_train():
    """shift_init_fit / shift_init_check: starts inside train's box, apart in J0 and J1 only
    (the joints heldout_init shifts), the check on heldout_init's side; train's obstacles."""
    train, held = SUITES["train"], SUITES["heldout_init"]
    fit, check = SHIFT_SUITES["shift_init_fit"], SHIFT_SUITES["shift_init_check"]
    for suite in (fit, check):
        _inside_train_apart_from(suite, held, "init_offset")
    assert check.init_offset.disjoint_axes(fit.init_offset) == [0, 1]
    assert held.init_offset.disjoint_axes(train.init_offset) == [0, 1]
    assert all(check.init_offset.hi[j] < fit.init_offset.lo[j] for j in (0, 1))
    assert all(h < 0 for h in held.init_offset.hi[:2])  # the same (negative) side


def test_samples_lie_in_their_suites_regions():
    for name, suite in ALL_SUITES.items():
        task = ReachingTask(name, seed=5)
        other = SUITES["train"] if name != "train" else SUITES["heldout_obstacles"]
        n_obstacles = 0
        for ep in range(25):
            task.reset(seed=ep)
            e = task.episode
            off = np.array([e.initial_joints[j] - INIT_RTM[j] for j in RARM_JOINTS])
            assert suite.init_offset.contains(off)
            assert suite.target.contains(e.targets["right"])
            assert reachable(e.targets["right"])
            assert len(e.obstacles) <= MAX_OBSTACLES
            for ob in e.obstacles:
                assert suite.obstacle.contains(obstacle_params(ob))
                n_obstacles += 1
            if name == "heldout_init":
                assert not other.init_offset.contains(off)
            if name == "shift_init_check":
                assert not SHIFT_SUITES["shift_init_fit"].init_offset.contains(off)
            if name in ("heldout_obstacles", "shift_check", "shift_beside"):
                fit = other if name == "heldout_obstacles" else SHIFT_SUITES["shift_fit"]
                assert all(not fit.obstacle.contains(obstacle_params(o)) for o in e.obstacles)
            if name == "heldout_obstacles":
                assert all(o.type == "box" for o in e.obstacles)
            assert not task.status()["collision"]  # every start is collision-free
        assert n_obstacles > 10


def test_targets_are_far_from_the_start_hand():
    for name in ALL_SUITES:
        for arm in ("right", "both"):
            task = ReachingTask(name, arm=arm, seed=0)
            for ep in range(15):
                task.reset(seed=ep)
                dist = task.hand_target_distance()
                assert min(dist.values()) >= MIN_START_TARGET_DISTANCE, (name, arm, ep)
                assert not task.status()["success"]  # nothing is solved at reset


def test_train_path_is_blocked_in_most_episodes():
    task = ReachingTask("train", seed=0)
    blocked = 0
    n = 60
    for ep in range(n):
        task.reset(seed=ep)
        start, goal = task.hand_positions()["right"], task.goals["right"]
        blocked += any(on_straight_path(start, goal, ob) for ob in task.obstacles)
    assert blocked / n >= 0.5


def test_suite_names_expand_all_and_refuse_unknown_names():
    assert suite_names(None, ["train"]) == ["train"]
    assert suite_names(["all"], ["train"]) == list(SUITES)
    assert suite_names(["shift_check", "train"], []) == ["shift_check", "train"]
    with pytest.raises(UserError, match="--suite: unknown suite 'nope'"):
        suite_names(["train", "nope"], [])


def test_shift_beside_keeps_every_obstacle_off_the_straight_way():
    """shift_beside: shift_check's obstacles, none within the expert's planning clearance of
    the straight start-to-target segment (in both arms' frames), 1-3 per layout."""
    beside = SHIFT_SUITES["shift_beside"]
    assert beside.obstacle == SHIFT_SUITES["shift_check"].obstacle
    assert beside.on_path == 0.0 and beside.way_clearance == pytest.approx(0.075)
    for arm in ("right", "both"):
        task = ReachingTask("shift_beside", arm=arm, seed=0)
        counts = []
        for ep in range(20):
            task.reset(seed=ep)
            e, hands = task.episode, task.hand_positions()
            counts.append(len(e.obstacles))
            for side, target in e.targets.items():
                for ob in e.obstacles:
                    assert segment_obstacle_distance(hands[side], np.asarray(target), ob,
                                                     n=24) >= 0.075, (arm, ep)
        assert min(counts) >= 1 and max(counts) > 1
    with pytest.raises(ValueError, match="way_clearance needs on_path=0"):
        replace(beside, on_path=0.6)
