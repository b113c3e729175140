"""Reaching task: contract layouts, determinism, clamping, collisions; the labelling rules
of datasets generated from it."""

import json

import numpy as np
import pytest

from mberil_ros.errors import UserError
from mberil_ros.sim import spaces
from mberil_ros.sim.scene import Episode, Obstacle
from mberil_ros.sim.task import ReachingTask


def test_fixed_contract_layouts():
    r = spaces.observation_layout("right")
    assert (r.obs_dim, r.act_dim) == (39, 6)
    assert (r.qpos, r.qvel, r.goal, r.obstacles) == (slice(0, 6), slice(6, 12), slice(12, 15),
                                                      slice(15, 39))
    b = spaces.observation_layout("both")
    assert (b.obs_dim, b.act_dim) == (54, 12)
    assert b.joints == spaces.RARM_JOINTS + spaces.LARM_JOINTS
    assert (b.goal, b.obstacles) == (slice(24, 30), slice(30, 54))


def test_observation_content_matches_task_state():
    task = ReachingTask("heldout_obstacles", seed=3)
    obs = task.reset()
    assert obs.shape == (39,)
    q = task.joint_positions()
    np.testing.assert_allclose(obs[spaces.RIGHT.qpos], [q[n] for n in spaces.RARM_JOINTS])
    np.testing.assert_allclose(obs[spaces.RIGHT.goal], task.goal)
    o = obs[spaces.RIGHT.obstacles].reshape(spaces.MAX_OBSTACLES, spaces.OBSTACLE_WIDTH)
    n = len(task.obstacles)
    assert n >= 1
    np.testing.assert_allclose(o[:n, spaces.OB_POSITION], [ob.position for ob in task.obstacles])
    np.testing.assert_allclose(o[:n, spaces.OB_HALF_EXTENTS],
                               [ob.half_extents for ob in task.obstacles])
    assert np.all(o[:n, spaces.OB_PRESENT] == 1.0) and np.all(o[n:] == 0.0)
    assert len(task.joint_velocities()) == 15 and task.time == 0.0


def _rollout(seed):
    task = ReachingTask("train", seed=seed)
    obs = task.reset()
    rng = np.random.default_rng(0)
    out = [obs]
    for _ in range(30):
        obs, _, done, _ = task.step(obs[:6] + rng.normal(0, 0.05, 6))
        out.append(obs)
        if done:
            break
    return np.array(out)


def test_deterministic_for_a_seed():
    a, b, c = _rollout(7), _rollout(7), _rollout(8)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_reset_seed_reproduces_the_episode():
    task = ReachingTask("train", seed=0)
    first = task.reset(seed=11)
    task.reset(seed=12)
    np.testing.assert_array_equal(task.reset(seed=11), first)


def test_actions_are_clamped_to_limits_and_velocity():
    task = ReachingTask("train", seed=0)
    obs = task.reset(seed=0)
    before = task.joint_targets()
    applied = task.apply_action(obs[:6] + 10.0)
    vmax = task.velocity_limits
    for name, a in zip(spaces.RARM_JOINTS, applied, strict=True):
        assert a - before[name] <= vmax[name] * spaces.CONTROL_DT + 1e-12
    for _ in range(200):  # drive far past the range: targets stop at the upper limits
        task.apply_action(np.full(6, 10.0))
    limits = task.joint_limits
    assert all(task.joint_targets()[n] == limits[n][1] for n in spaces.RARM_JOINTS)
    with pytest.raises(ValueError):
        task.apply_action(np.zeros(5))


def test_set_targets_by_name_and_advance():
    task = ReachingTask("train", seed=0)
    task.reset(seed=0)
    start = task.joint_positions()["HEAD_JOINT0"]
    for _ in range(50):
        task.set_joint_targets({"HEAD_JOINT0": 0.5})
        task.advance(10)
    assert task.time == pytest.approx(1.0)
    assert task.joint_positions()["HEAD_JOINT0"] == pytest.approx(start + 0.5, abs=0.02)


def test_collision_with_obstacle_ends_episode_as_failure():
    # A box right in front of the hand and a target behind it; drive the hand forward.
    task = ReachingTask("train", seed=0)
    ep = Episode(arm="right", initial_joints={}, targets={"right": (0.55, -0.18, 0.07)},
                 obstacles=(Obstacle.box((0.45, -0.18, 0.0), (0.04, 0.2, 0.3)),))
    obs = task.reset(layout=ep)
    assert not task.status()["collision"]
    done, info = False, {}
    while not done:  # straight-arm push: raise J1 forward, open the elbow
        obs, _, done, info = task.step(obs[:6] + np.array([0, -0.05, 0.05, 0, 0, 0]))
    assert info["collision"] and not info["success"]
    assert "obstacle0" in info["collision_pair"]


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError):
        ReachingTask("nope")
    with pytest.raises(UserError):
        ReachingTask("train", arm="middle")
    task = ReachingTask("train", arm="right")
    ep = Episode(arm="left", initial_joints={}, targets={"left": (0.4, 0.2, 0.05)})
    with pytest.raises(UserError, match="arm left"):
        task.reset(layout=ep)


def test_both_arms_layout():
    task = ReachingTask("train", arm="both", seed=2)
    obs = task.reset()
    assert obs.shape == (54,)
    np.testing.assert_allclose(obs[24:27], task.goals["right"])
    np.testing.assert_allclose(obs[27:30], task.goals["left"])
    assert task.goals["right"][1] < 0 < task.goals["left"][1]
    obs, _, _, info = task.step(obs[:12])
    assert set(info["distances"]) == {"right", "left"}


# ----- datasets generated from the task: labelling rules and the PU mixing option -----

def _metas(path):
    from mberil_ros.data.dataset import Dataset

    return Dataset(path).episodes


def test_failed_expert_runs_never_get_an_expert_label(tmp_path, monkeypatch):
    from mberil_ros.sim import rollout_dataset

    real = rollout_dataset._rollout

    def flaky(task, demo, ep_seed, settle_steps=0):  # every other expert run "times out"
        obs, acts, info = real(task, demo, ep_seed, settle_steps)
        if demo.name == "expert" and ep_seed % 2 == 0:
            info = {**info, "success": False, "collision": False}
        return obs, acts, info

    monkeypatch.setattr(rollout_dataset, "_rollout", flaky)
    path = rollout_dataset.generate_dataset(tmp_path / "ds", 2, 1, seed=0,
                                            suboptimal=("greedy",), expert_in_unlabeled=1)
    metas = _metas(path)
    experts = [m for m in metas if m["demonstrator"] == "expert"]
    assert [m["label"] for m in metas] == ["expert", "expert", "suboptimal", "suboptimal"]
    assert len(experts) == 3 and all(m["success"] and m["seed"] % 2 for m in experts)
    assert all(m["seed"] % 2 == 0 for m in metas if m["demonstrator"] == "greedy")


def test_generated_expert_episodes_succeed_without_collision(tmp_path):
    from mberil_ros.sim.rollout_dataset import generate_dataset

    path = generate_dataset(tmp_path / "ds", 2, 3, seed=40)
    for m in _metas(path):
        params = json.loads(m["task_params"])
        if m["demonstrator"] == "expert":
            assert m["success"] and not params["collision"] and not params["timeout"]
            assert m["length"] >= 50  # 1 s at least: never solved at reset
        assert m["label"] == ("expert" if m["demonstrator"] == "expert" else "suboptimal")


def test_expert_fraction_in_unlabeled_set(tmp_path):
    from mberil_ros.algos.data import OfflineData
    from mberil_ros.sim.rollout_dataset import generate_dataset, unlabeled_plan

    plan = unlabeled_plan(10, 0.3)
    assert len(plan) == 10 and plan.count("expert") == 3
    assert set(plan) - {"expert"} == {"noisy", "detour", "greedy"}
    with pytest.raises(ValueError):
        unlabeled_plan(4, 1.5)
    path = generate_dataset(tmp_path / "ds", 1, 4, seed=60, expert_fraction=0.5,
                            suboptimal=("greedy",))
    subs = [m for m in _metas(path) if m["label"] == "suboptimal"]
    assert len(subs) == 4 and sum(m["demonstrator"] == "expert" for m in subs) == 2
    # The PU prior the trainer derives from metadata: the expert share of unlabeled frames.
    frames = sum(m["length"] for m in subs if m["demonstrator"] == "expert") / sum(
        m["length"] for m in subs)
    alpha = OfflineData(path).mixing_ratio
    assert alpha == pytest.approx(frames) and alpha > 0
