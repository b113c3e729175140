"""Distractor obstacles (algos/distractors.py): the scripted expert does exactly what it did
without them, they keep their clearance by MuJoCo's exact distances, and batches get them
only in empty slots, identically at every step, never in validation."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from mberil_ros.algos.data import DataConfig, OfflineData
from mberil_ros.algos.distractors import (
    ARM_CLEARANCE,
    EpisodeSweep,
    candidate_sets,
    not_applicable,
)
from mberil_ros.sim.demonstrators import ScriptedExpert
from mberil_ros.sim.kinematics import ArmKinematics
from mberil_ros.sim.observation import obstacle_features, obstacles_from_features
from mberil_ros.sim.rollout_dataset import _rollout, generate_dataset
from mberil_ros.sim.scene import Obstacle, point_obstacle_distance, points_obstacle_distance
from mberil_ros.sim.spaces import MAX_OBSTACLES, OB_PRESENT, OBSTACLE_WIDTH, observation_layout
from mberil_ros.sim.task import ReachingTask


@pytest.mark.parametrize("seed", [11, 12])
def test_the_expert_acts_the_same_with_its_distractors(seed):
    task, expert = ReachingTask("train"), ScriptedExpert()
    obs, acts, info = _rollout(task, expert, seed)
    assert info["success"]
    episode = task.episode
    layout = observation_layout("right")
    sweep = EpisodeSweep(layout.state_names, "right")
    feats, counts, first = candidate_sets(sweep, np.asarray(obs), 2, np.random.default_rng(0))
    assert first == len(episode.obstacles)
    if first == MAX_OBSTACLES:
        pytest.skip("this layout has no empty slot")  # seeds are fixed: never in practice
    assert counts.max() > 0
    extra = obstacles_from_features(feats[int(np.argmax(counts))])
    assert len(extra) == counts.max()
    scene = replace(episode, obstacles=tuple(episode.obstacles) + tuple(extra))

    # MuJoCo's exact distances agree with the bounding-sphere test
    kin = ArmKinematics()
    kin.set_obstacles(extra)
    for o in obs[::10]:
        kin.set_configuration(dict(zip(layout.joints, o[layout.qpos], strict=True)))
        assert not list(kin.proximity("right", ARM_CLEARANCE, 0.0))

    # ... and the expert, meeting them for real, sends the same commands
    task2, expert2 = ReachingTask("train"), ScriptedExpert()
    o = task2.reset(layout=scene)
    expert2.reset(scene, seed=seed)
    assert o[layout.obstacles][first * OBSTACLE_WIDTH + OB_PRESENT] == 1.0
    for a in acts:
        np.testing.assert_array_equal(expert2.act(o), a)
        o, _, done, info2 = task2.step(a)
    assert info2["success"] and not info2["collision"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = generate_dataset(tmp_path_factory.mktemp("d") / "ds", 10, 2, seed=5)
    return (OfflineData(root, DataConfig(val_fraction=0.2, distractors=1.0)),
            OfflineData(root, DataConfig(val_fraction=0.2, distractors=0.0)))


def test_batches_get_distractors_only_in_empty_slots(data):
    aug, plain = data
    bank = aug.distractors
    assert plain.distractors is None and bank.coverage() > 0.5
    for draw in ("episodes", "steps"):
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        if draw == "episodes":
            b1, b0 = aug.sample("all", 32, g1), plain.sample("all", 32, g2)
        else:
            b1, b0 = aug.sample_steps("all", 256, g1), plain.sample_steps("all", 256, g2)
        assert torch.equal(b1.act, b0.act) and torch.equal(b1.mask, b0.mask)
        changed = (b1.obs != b0.obs)
        first_col = aug.state_names.index("obstacle0.x")
        assert not changed[..., :first_col].any()  # joints and goal untouched
        assert changed.any()
        for b in range(b1.obs.shape[0]):
            valid = b1.mask[b]
            raw = b1.obs[b][valid].numpy() * aug.codec.obs_scale + aug.codec.obs_mean
            flags = raw[:, first_col + OB_PRESENT::OBSTACLE_WIDTH]
            # the same scene at every step, slots filled from the front (no gaps)
            assert np.abs(raw[:, first_col:] - raw[:1, first_col:]).max() < 1e-5
            f = np.round(flags[0]).astype(int)
            assert list(f) == sorted(f, reverse=True)
            np.testing.assert_allclose(b1.next_obs[b][valid][:, first_col:],
                                       b1.obs[b][valid][:, first_col:], atol=1e-6)
            # real obstacles stay where they were
            real = int(np.round((b0.obs[b][valid][0].numpy() * aug.codec.obs_scale
                                 + aug.codec.obs_mean)[first_col + OB_PRESENT::OBSTACLE_WIDTH]
                                ).sum())
            cols = slice(first_col, first_col + real * OBSTACLE_WIDTH)
            assert torch.equal(b1.obs[b][:, cols], b0.obs[b][:, cols])


def test_validation_and_input_bounds_are_untouched(data):
    aug, plain = data
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(aug.sample("all", 8, g1, split="val").obs,
                       plain.sample("all", 8, g2, split="val").obs)
    for a, b in zip(aug.batches("expert", 4), plain.batches("expert", 4), strict=True):
        assert torch.equal(a.obs, b.obs)
    # the networks' input bounds come from the recorded data, not from distractors
    np.testing.assert_array_equal(aug.train_observations(), plain.train_observations())


def test_a_changing_scene_gets_no_distractors():
    """An obstacle that appears, or a goal that moves, mid-episode: no distractors."""
    layout = observation_layout("right")
    sweep = EpisodeSweep(layout.state_names, "right")
    obs = np.zeros((30, layout.obs_dim))
    obs[:, layout.goal] = (0.35, -0.3, 0.05)
    c = layout.obstacles.start
    obs[10:, c:c + OBSTACLE_WIDTH] = (0.4, -0.4, -0.05, 0.02, 0.02, 0.05, 0.0, 1.0)
    _, counts, first = candidate_sets(sweep, obs, 3, np.random.default_rng(0))
    assert first == MAX_OBSTACLES and not counts.any()
    obs[:, c:c + OBSTACLE_WIDTH] = obs[-1, c:c + OBSTACLE_WIDTH]  # fixed obstacle ...
    assert candidate_sets(sweep, obs, 3, np.random.default_rng(0))[1].any()
    obs[20:, layout.goal] = (0.30, -0.2, 0.05)  # ... but the goal moves
    _, counts, first = candidate_sets(sweep, obs, 3, np.random.default_rng(0))
    assert first == MAX_OBSTACLES and not counts.any()


def test_distractor_settings_are_validated():
    with pytest.raises(ValueError, match="distractors"):
        DataConfig(distractors=1.5)
    with pytest.raises(ValueError, match="distractor_sets"):
        DataConfig(distractor_sets=0)


def test_an_observation_without_goal_or_slots_takes_none():
    names = observation_layout("right").state_names
    assert not_applicable(names, "right") is None
    assert "goal.x" in not_applicable([n for n in names if not n.startswith("goal")], "right")
    assert "obstacle" in not_applicable([n for n in names if not n.startswith("obstacle")],
                                        "right")
    assert "goal_left" in not_applicable(names, "both")
    with pytest.raises(ValueError, match="no obstacle slots"):
        EpisodeSweep([n for n in names if not n.startswith("obstacle")], "right")


def test_slot_features_round_trip_and_many_point_distances():
    obs = [Obstacle.box((0.3, -0.3, -0.05), (0.04, 0.05, 0.10)),
           Obstacle.sphere((0.4, -0.1, 0.1), 0.03)]
    back = obstacles_from_features(obstacle_features(obs))
    assert [o.type for o in back] == ["box", "sphere"]
    for a, b in zip(back, obs, strict=True):
        np.testing.assert_allclose(a.position, b.position)
        np.testing.assert_allclose(a.size, b.size)
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, (50, 3))
    for ob in obs:
        np.testing.assert_allclose(points_obstacle_distance(pts, ob),
                                   [point_obstacle_distance(p, ob) for p in pts], atol=1e-12)
