"""The closed-loop evaluator, `mberil eval`, and checkpoint selection on closed-loop success."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from algos_tester import TINY_NET, bc_run, tiny_dataset

from mberil_ros.algos.runner import TrainingRun
from mberil_ros.algos.train_config import load_train_config
from mberil_ros.cli import main
from mberil_ros.eval.closed_loop import (
    EVAL_SEED_BASE,
    Evaluator,
    ExpertController,
    ExpertQueryController,
    RuntimeController,
    evaluate,
    run_episode,
    sign_change_rate,
    summarize,
)
from mberil_ros.sim.demo import run_episode as demo_episode
from mberil_ros.sim.demonstrators import make_demonstrator
from mberil_ros.sim.task import ReachingTask

SEEDS = [EVAL_SEED_BASE + i for i in range(6)]


def test_expert_reproduces_its_own_success_through_the_evaluator():
    """The evaluator's self-test: the scripted expert run by the evaluator (in worker
    processes) has exactly the outcomes of the expert run directly, seed by seed."""
    got = evaluate("expert", "train", SEEDS, workers=2)
    task, demo = ReachingTask("train"), make_demonstrator("expert")
    want = [demo_episode(task, demo, s)[0] for s in SEEDS]
    assert [r.success for r in got] == [w["success"] for w in want]
    assert [r.seed for r in got] == SEEDS
    np.testing.assert_allclose([r.final_distance for r in got],
                               [w["distance"] for w in want], atol=1e-9)
    assert summarize(got)["success"] >= 0.5


def test_hold_still_never_succeeds_and_never_moves():
    with Evaluator(1) as ev:
        res = ev.run("hold", "train", SEEDS[:3])
    assert not any(r.success for r in res)
    assert all(r.smoothness == 0.0 and r.sign_changes == 0.0 for r in res)


def test_hold_mode_runs_past_success_the_expert_holds_and_a_leaving_controller_does_not():
    """--hold: the expert keeps the hand on the target until the time limit; a controller
    that walks away after reaching is caught; the first-end metrics stay the same."""

    class LeaveAfterReaching(ExpertController):
        def start(self, task, seed):
            super().start(task, seed)
            self.task, self.reached, self.offset = task, False, 0.0

        def act(self, obs):
            self.reached = self.reached or self.task.status()["success"]
            if self.reached:
                self.offset += 0.004  # its joints drift away at 0.2 rad/s
            return super().act(obs) + self.offset

    task = ReachingTask("train")
    seed = SEEDS[0]
    plain = run_episode(task, ExpertController(), seed)
    held = run_episode(task, ExpertController(), seed, hold=True)
    assert plain.success and plain.held is None and plain.settled_distance is None
    assert held.success and held.held and held.settled_distance < 0.01
    assert (held.final_distance, held.ticks) == (plain.final_distance, plain.ticks)
    assert task.time == pytest.approx(task.time_limit)  # it ran to the limit

    left = run_episode(task, LeaveAfterReaching(), seed, hold=True)
    assert left.success and not left.held and left.settled_distance > 0.02
    assert summarize([held, left])["held"] == 0.5


def test_sign_change_rate_detects_chatter():
    t = np.arange(100)[:, None]
    smooth = 0.01 * t * np.ones((1, 6))
    chatter = smooth + 0.05 * ((-1.0) ** t)
    assert sign_change_rate(smooth, 0.02) == 0.0
    assert sign_change_rate(chatter, 0.02) > 20.0  # ~ one reversal per tick


def test_episode_paths_are_kept_only_when_asked():
    task = ReachingTask("train")
    r = run_episode(task, ExpertController(), SEEDS[0], keep_path=True)
    assert len(r.hand_path) == r.ticks + 1
    assert run_episode(task, ExpertController(), SEEDS[0]).hand_path == []


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sel")
    ds = tiny_dataset(root, expert=8, suboptimal=4)
    cfg = load_train_config(None, [
        "algorithm=offline_mberil", f"dataset={ds}", f"output_dir={root}", "name=r",
        "steps=8", "eval_every=2", "checkpoint_every=2", "keep_checkpoints=1",
        "eval_episodes=2", "progress=false", "algo.batch_size=2", "algo.rollout_batch=2",
        "algo.ensemble_size=2", "algo.bc_warmstart_steps=4", "algo.model_warmstart_steps=3",
        "algo.data.val_fraction=0.25", "algo.network.backbone=mlp",
        *[f"algo.network.{k}={v}" for k, v in TINY_NET.items()]])
    TrainingRun(cfg, root / "r").run()
    return root / "r"


def test_warm_start_evaluations_are_never_best_and_the_warm_start_end_is_kept(run_dir):
    ckpts = run_dir / "checkpoints"
    best, warm = os.readlink(ckpts / "best"), os.readlink(ckpts / "warmstart")
    assert int(warm) == 4  # saved right after the 4th (last) BC step
    assert int(best) > 4  # the warm-start end itself is the baseline, not a candidate
    evals = {int(p.stem): json.loads(p.read_text()) for p in (run_dir / "eval").glob("*.json")}
    assert evals[2]["warm"] == 0.0 and evals[4]["warm"] == 1.0
    assert all("val/success" in e for e in evals.values())
    assert (ckpts / warm).is_dir() and (ckpts / best).is_dir()  # pruning spares both


def test_mberil_eval_command_writes_a_report(run_dir, tmp_path, capsys):
    out = tmp_path / "e.json"
    rc = main(["eval", str(run_dir), "--suite", "train", "--episodes", "2", "--workers", "1",
               "--baselines", "--json", str(out)])
    assert rc == 0
    table = capsys.readouterr().out
    assert "policy" in table and "expert" in table and "hold" in table
    report = json.loads(out.read_text())
    assert [r["controller"] for r in report["results"]][1:] == ["expert", "hold"]
    assert report["results"][0]["summary"]["episodes"] == 2


def test_mberil_eval_pairs_several_checkpoints_on_the_same_layouts(run_dir, tmp_path, capsys):
    """warmstart against last and the hold-still policy, episode by episode; the counts are
    those of the episodes in the same report."""
    out = tmp_path / "p.json"
    warm = run_dir / "checkpoints" / "warmstart"
    assert main(["eval", str(warm), str(run_dir), "hold", "--suite", "train", "--episodes",
                 "3", "--workers", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "paired on the same layouts" in text and str(warm) in text and "gained" in text
    report = json.loads(out.read_text())
    success = {(r["controller"], r["suite"]): {e["seed"]: e["success"] for e in r["episodes"]}
               for r in report["results"]}
    assert len(success) == 3  # no duplicate run of hold
    base = success[str(warm.resolve()), "train"]
    for p in report["paired"]:
        other = success[p["controller"], p["suite"]]
        assert p["gained"] == sum(other[s] and not base[s] for s in base)
        assert p["lost"] == sum(base[s] and not other[s] for s in base)
    hold = next(p for p in report["paired"] if p["controller"] == "hold")
    assert hold["success"] == 0.0 and hold["gained"] == 0


@pytest.mark.parametrize("arm", ["right", "left", "both"])
def test_the_expert_asked_from_its_own_last_command_repeats_its_command(arm):
    """act_from(obs, last command) is what the expert does in another controller's place:
    given its own last command (every active arm's joints), it is exactly what it
    commanded."""
    task = ReachingTask("train", arm=arm)
    driver, twin = make_demonstrator("expert"), make_demonstrator("expert")
    task.reset(seed=SEEDS[1])
    driver.reset(task.episode, seed=1)
    twin.reset(task.episode, seed=1)
    obs = task.observation()
    last = obs[task.obs_layout.qpos].copy()  # the arm holds its position at the start
    for _ in range(40):
        command = driver.act(obs)
        np.testing.assert_array_equal(twin.act_from(obs, last), command)
        last = command
        obs, _, done, _ = task.step(command)
        if done:
            break


def test_expert_query_measures_the_experts_command_in_the_policys_sigmas(run_dir):
    task = ReachingTask("train")
    ctl = ExpertQueryController(RuntimeController.load(str(run_dir), task).runtime)
    task.reset(seed=SEEDS[0])
    ctl.start(task, SEEDS[0])
    obs = task.observation()
    prev = ctl.runtime.prev_command.copy()
    want_command = make_demonstrator("expert")
    want_command.reset(task.episode, seed=SEEDS[0])
    expert = want_command.act_from(obs, prev)
    ctl.act(obs)
    mu, log_std = ctl.runtime.last_params
    a = ctl.runtime.codec.action(expert, obs.astype(np.float32), prev)
    want = np.abs(np.arctanh(np.clip(a, -1 + 1e-6, 1 - 1e-6)) - mu) / np.exp(log_std)
    np.testing.assert_allclose(ctl.z[0], want, rtol=1e-5)
    r = run_episode(task, ctl, SEEDS[0])
    assert len(ctl.z) == r.ticks and r.expert_z == pytest.approx(float(np.median(ctl.z)))
    assert 0.0 <= r.expert_tail_start <= 1.0 and 0.0 <= r.expert_tail <= 1.0
    plain = run_episode(task, RuntimeController(ctl.runtime), SEEDS[0])
    assert plain.expert_z is None
    # asking the expert does not change what the policy does
    assert (plain.ticks, plain.success, plain.final_distance) == (r.ticks, r.success,
                                                                   r.final_distance)


def test_mberil_eval_expert_query_reports_by_outcome(run_dir, tmp_path, capsys):
    out = tmp_path / "q.json"
    assert main(["eval", str(run_dir), "--suite", "train", "--episodes", "2", "--workers", "1",
                 "--baselines", "--expert-query", "--json", str(out)]) == 0
    assert "expert_z ok/fail" in capsys.readouterr().out
    by = {r["controller"]: r for r in json.loads(out.read_text())["results"]}
    policy = by[next(k for k in by if k not in ("expert", "hold"))]
    assert all(e["expert_z"] > 0 for e in policy["episodes"])
    ok = [e["expert_z"] for e in policy["episodes"] if e["success"]]
    assert policy["summary"]["expert_z_success"] == (float(np.median(ok)) if ok else None)
    assert "expert_z" not in by["expert"]["summary"]  # baselines are not queried


def test_mberil_eval_runs_a_checkpoint_on_the_arms_it_was_trained_for(tmp_path, capsys):
    """No --arm: a both-arms policy runs on both arms, and the expert it is asked against
    commands both (act_from reads every active arm's last command)."""
    ds = tiny_dataset(tmp_path, expert=3, suboptimal=0, arm="both")
    run = bc_run(tmp_path, "both", ds, 2, "eval_episodes=1", "algo.network.backbone=mlp",
                 net=TINY_NET)
    out = tmp_path / "b.json"
    assert main(["eval", str(run), "--episodes", "1", "--workers", "1", "--expert-query",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["arm"] == "both"
    assert report["results"][0]["episodes"][0]["expert_z"] > 0
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1", "--arm", "right"]) == 2
    assert "policy controls joints" in capsys.readouterr().err.strip().splitlines()[-1]


def test_mberil_eval_bad_input_is_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path), "--episodes", "2"]) == 2
    assert main(["eval", "expert", "--suite", "nope"]) == 2
    assert main(["eval", "expert", "expert"]) == 2
    assert main(["eval", "expert", "hold", "--nll", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and "no complete checkpoint" in err[0] and "unknown suite" in err[1]
    assert "given twice" in err[2] and "--nll needs a checkpoint, not expert / hold" in err[3]


def test_mberil_eval_runs_a_users_layouts(tmp_path, capsys):
    layouts = tmp_path / "scenes.yaml"
    layouts.write_text("layouts:\n"
                       "  - {name: clear, target: [0.40, -0.38, 0.05]}\n"
                       "  - {name: lefty, arm: left, target: [0.40, 0.38, 0.05]}\n"
                       "  - name: boxed\n"
                       "    target: [0.38, -0.32, 0.05]\n"
                       "    obstacles: [{type: box, position: [0.22, -0.52, -0.04],"
                       " size: [0.05, 0.05, 0.12]}]\n")
    out = tmp_path / "r.json"
    assert main(["eval", "expert", "--layouts", str(layouts), "--baselines", "--workers", "1",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["layouts"] == str(layouts) and report["arm"] == "right"
    by = {r["controller"]: r for r in report["results"]}
    # the right-arm layouts (0 and 2), once each; the expert reaches, holding still does not
    assert [e["seed"] for e in by["expert"]["episodes"]] == [0, 2]
    assert by["expert"]["summary"]["success"] == 1.0
    assert by["hold"]["summary"]["success"] == 0.0
    assert main(["eval", "expert", "--layouts", str(layouts), "--suite", "train"]) == 2
    assert main(["eval", "expert", "--layouts", str(layouts), "--arm", "both"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].endswith("--layouts and --suite exclude each other")
    assert "no layout for arm 'both'" in err[-1]


def test_mberil_eval_hold_adds_held_and_settled_distance(tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["eval", "expert", "--suite", "train", "--episodes", "2", "--workers", "1",
                 "--hold", "--json", str(out)]) == 0
    assert "settled_dist_m" in capsys.readouterr().out
    summary = json.loads(out.read_text())["results"][0]["summary"]
    assert summary["held"] == 1.0 and summary["settled_distance"] < 0.01


def test_the_sign_test_on_discordant_episodes():
    from mberil_ros.eval.paired import paired, sign_test_p

    assert sign_test_p(0, 0) == 1.0 and sign_test_p(1, 1) == 1.0
    assert sign_test_p(1, 2) == 1.0  # one layout up, two down: nothing to tell
    assert sign_test_p(0, 6) == pytest.approx(2 / 64)  # six of six one way
    assert sign_test_p(8, 1) == pytest.approx(2 * 10 / 512)
    base = [{"seed": s, "success": s % 2 == 0} for s in range(6)]
    other = [{"seed": s, "success": s < 4} for s in reversed(range(6))]  # order is irrelevant
    got = paired(base, other)
    assert (got["gained"], got["lost"], got["episodes"]) == (2, 1, 6)
    assert got["success_base"] == pytest.approx(0.5) and got["success"] == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="same layouts"):
        paired(base, other[:-1])
