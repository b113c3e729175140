"""The scripted expert solves every suite; sub-optimal demonstrators do measurably worse."""

import numpy as np
import pytest

from mberil_ros.sim.demo import run_episode
from mberil_ros.sim.demonstrators import DEMONSTRATORS, make_demonstrator
from mberil_ros.sim.suites import SUITES
from mberil_ros.sim.task import ReachingTask

EPISODES = 20  # episodes last 2-6 s now: keep the file under ~30 s


@pytest.fixture(scope="module")
def rates():
    out = {}
    for suite in SUITES:
        task = ReachingTask(suite, "right", seed=0)
        for name in DEMONSTRATORS:
            demo = make_demonstrator(name, seed=0)
            results = [run_episode(task, demo, 1000 + ep)[0] for ep in range(EPISODES)]
            out[suite, name] = (np.mean([r["success"] for r in results]),
                                np.mean([r["collision"] for r in results]))
    for (suite, name), (s, c) in out.items():
        print(f"{suite:18s} {name:7s} success {s:.2f} collisions/ep {c:.2f}")
    return out


@pytest.mark.parametrize("suite", list(SUITES))
def test_expert_succeeds_on_95_percent(rates, suite):
    success, collisions = rates[suite, "expert"]
    assert success >= 0.95
    assert collisions <= 0.05


def test_suboptimal_demonstrators_are_worse(rates):
    suboptimal = [n for n in DEMONSTRATORS if n != "expert"]
    assert suboptimal
    expert_all = np.mean([rates[s, "expert"][0] for s in SUITES])
    for name in suboptimal:
        assert np.mean([rates[s, name][0] for s in SUITES]) < expert_all, name
    for s in SUITES:  # on each suite the sub-optimal group as a whole is worse
        assert np.mean([rates[s, n][0] for n in suboptimal]) < rates[s, "expert"][0]


def test_labels():
    assert make_demonstrator("expert").label == "expert"
    assert {make_demonstrator(n).label for n in DEMONSTRATORS if n != "expert"} == {"suboptimal"}
    with pytest.raises(ValueError):
        make_demonstrator("oracle")


def test_expert_is_deterministic_and_closed_loop():
    task = ReachingTask("train", seed=0)
    demo = make_demonstrator("expert")
    a, pa = run_episode(task, demo, 4)
    b, pb = run_episode(task, demo, 4)
    np.testing.assert_array_equal(pa["right"], pb["right"])
    assert a["success"] and a["time"] < task.time_limit


def test_expert_both_arms():
    task = ReachingTask("train", arm="both", seed=0)
    demo = make_demonstrator("expert")
    wins = [run_episode(task, demo, ep)[0]["success"] for ep in range(10)]
    assert np.mean(wins) >= 0.8
