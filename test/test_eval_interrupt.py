"""`mberil eval --interrupt`: a hold in mid-episode, as policy_node makes one on stale input
(the recurrent state resumes), on an e-stop (resumes where the arm was held) or on a reset
(a fresh history from the state reached)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from algos_tester import TINY_NET, bc_run, tiny_dataset

from mberil_ros.cli import main
from mberil_ros.eval.closed_loop import (
    EVAL_SEED_BASE,
    ExpertController,
    InterruptedController,
    Interruption,
    RuntimeController,
)
from mberil_ros.sim.task import ReachingTask

SEED = EVAL_SEED_BASE + 3
START, TICKS = 5, 10


@pytest.fixture(scope="module")
def mamba_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupt")
    ds = tiny_dataset(root, expert=6, suboptimal=0)
    return bc_run(root, "m", ds, 4, net={**TINY_NET, "backbone": "mamba"})


def _drive(task: ReachingTask, ctl, ticks: int, before_act=None) -> list[np.ndarray]:
    """The controller's commands over ``ticks`` ticks from SEED's layout;
    ``before_act(i, obs)`` is called before tick i's act."""
    task.reset(seed=SEED)
    ctl.start(task, SEED)
    obs, out = task.observation(), []
    for i in range(ticks):
        if before_act:
            before_act(i, obs)
        out.append(np.asarray(ctl.act(obs), dtype=float))
        obs, _, done, _ = task.step(out[-1])
        assert not done
    return out


def _states_equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_the_expert_holds_its_last_command_for_the_window_then_goes_on():
    task = ReachingTask("train")
    cmds = _drive(task, InterruptedController(ExpertController(), Interruption(START, TICKS)),
                  START + TICKS + 5)
    for i in range(START, START + TICKS):
        np.testing.assert_array_equal(cmds[i], cmds[START - 1])
    assert not np.array_equal(cmds[START + TICKS], cmds[START - 1])  # moving again


def _state(runtime) -> list[torch.Tensor]:
    return [torch.tensor(runtime._state.t)] + [t.clone() for layer in runtime._state.layers
                                                for t in layer]


@pytest.mark.parametrize("kind", Interruption.KINDS)
def test_a_policy_is_not_stepped_during_the_hold_and_resumes_as_the_node_would(mamba_run,
                                                                               kind):
    """stale, and estop with the arm where it was held: the tick after the window continues
    the history from before it (a fresh runtime given the same observations before the
    window, then the one after it, agrees); reset: it is a fresh episode's first tick from
    the state reached."""
    task = ReachingTask("train")
    ctl = InterruptedController(RuntimeController.load(str(mamba_run), task),
                                Interruption(START, TICKS, kind))
    observations, states = [], {}

    def record(i, obs):
        observations.append(obs.copy())
        if i in (START, START + TICKS):
            states[i] = _state(ctl.runtime)

    cmds = _drive(task, ctl, START + TICKS + 1, record)
    assert all(torch.equal(a, b) for a, b in zip(states[START], states[START + TICKS],
                                                 strict=True))  # never stepped while holding
    for i in range(START, START + TICKS):
        np.testing.assert_array_equal(cmds[i], cmds[START - 1])
    assert ctl.resumed is (True if kind == "estop" else None)
    end_obs = observations[START + TICKS]

    def resumed():
        r = RuntimeController.load(str(mamba_run), task).runtime
        r.reset(observations[0])
        for i in range(START):
            np.testing.assert_array_equal(r.step(observations[i]), cmds[i])
        return r.step(end_obs)

    def fresh():
        r = RuntimeController.load(str(mamba_run), task).runtime
        r.reset(end_obs)
        return r.step(end_obs)

    want, other = (fresh(), resumed()) if kind == "reset" else (resumed(), fresh())
    np.testing.assert_array_equal(cmds[START + TICKS], want)
    assert not np.array_equal(other, want)  # the check can tell the two apart


def test_interruption_settings_are_checked():
    with pytest.raises(ValueError, match="start >= 1"):
        Interruption(0, 5)
    with pytest.raises(ValueError, match="kind"):
        Interruption(5, 5, "pause")
    assert str(Interruption(60, 50, "estop")) == "estop hold at tick 60 for 50 ticks"


def test_mberil_eval_interrupt_pairs_each_controller_with_itself(mamba_run, tmp_path, capsys):
    out = tmp_path / "i.json"
    assert main(["eval", str(mamba_run), "hold", "--episodes", "2", "--workers", "1",
                 "--interrupt", "3:4", "--interrupt-as", "estop", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "hold + estop hold" in text and "interrupted: estop hold at tick 3 for 4" in text
    report = json.loads(out.read_text())
    assert report["interruption"] == {"start": 3, "ticks": 4, "kind": "estop"}
    runs = {(r["controller"], r["interrupted"]): r for r in report["results"]}
    assert len(runs) == 4
    # holding still is holding still, interrupted or not
    hold = [runs["hold", flag]["episodes"] for flag in (False, True)]
    assert [e["final_distance"] for e in hold[0]] == [e["final_distance"] for e in hold[1]]
    pairs = {(p["base"], p["controller"], p["interrupted"]) for p in report["paired"]}
    policy = next(c for c, _ in runs if c != "hold")
    # the sim's arm is where it was held at the clear: every history was kept
    assert runs[policy, True]["summary"]["resumed"] == 1.0
    assert "resumed" not in runs["hold", True]["summary"]  # nothing to resume
    assert pairs == {(policy, "hold", False), (policy, policy, True), ("hold", "hold", True)}
    for p in report["paired"]:
        base = {e["seed"]: e["success"] for e in runs[p["base"], False]["episodes"]}
        other = {e["seed"]: e["success"] for e in runs[p["controller"], p["interrupted"]]
                 ["episodes"]}
        assert p["gained"] == sum(other[s] and not base[s] for s in base)
        assert p["lost"] == sum(base[s] and not other[s] for s in base)


def test_mberil_eval_bad_interrupt_is_one_line(capsys):
    assert main(["eval", "expert", "--interrupt", "60"]) == 2
    assert main(["eval", "expert", "--interrupt", "0:50"]) == 2
    assert main(["eval", "expert", "--interrupt-as", "estop"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert "--interrupt must be TICK:TICKS" in err[0] and "'60'" in err[0]
    assert "start >= 1" in err[1]
    assert err[2].endswith("--interrupt-as needs --interrupt TICK:TICKS")
