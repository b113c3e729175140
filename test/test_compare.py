"""`mberil compare`: the job matrix, a real (tiny) job end to end, reuse of finished jobs,
resume of interrupted trainings, shards, and one-line errors on a bad config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from mberil_ros.cli import main
from mberil_ros.compare import Plan, all_jobs, load_config
from mberil_ros.compare_report import job_numbers
from mberil_ros.eval.closed_loop import EVAL_SEED_BASE

TINY = ("algo.network.d_model=16, algo.network.mlp_hidden=32, algo.network.head_hidden=32, "
        "algo.network.backbone=mlp")


def config(tmp_path: Path, **extra: str) -> Path:
    text = f"""
output: {tmp_path / 'out'}
seeds: [0, 1]
datasets:
  mix: {{expert: 4, suboptimal: 2, expert_fraction: 0.5, seed: 10}}
  pure: {{expert: 4, suboptimal: 0, seed: 20}}
test: {{episodes: 2, seed: 900000, suites: [heldout_obstacles]}}
methods:
  bc-mlp: {{config: train_bc.yaml, overrides: [steps=4, {TINY}]}}
  mberil-mlp: {{config: train.yaml, overrides: [steps=6, algo.bc_warmstart_steps=2,
      algo.model_warmstart_steps=2, algo.batch_size=2, algo.rollout_batch=2,
      algo.ensemble_size=2, {TINY}]}}
policy_inputs: [state, state_prev_action]
alpha_ablation: [mix]
train: [eval_every=4, checkpoint_every=4, progress=false, algo.data.val_fraction=0.5]
eval_episodes: 1
"""
    for key, value in extra.items():
        text += f"{key}: {value}\n"
    path = tmp_path / "compare.yaml"
    path.write_text(text)
    return path


def test_the_job_matrix_covers_methods_inputs_datasets_seeds_and_the_alpha_ablation(tmp_path):
    cfg = load_config(config(tmp_path))
    keys = [j.key for j in all_jobs(cfg)]
    # bc: 2 datasets x 2 inputs x 2 seeds; Offline-MB-ERIL the same + alpha 0 on `mix`
    assert len(keys) == 8 + 8 + 4 == len(set(keys))
    assert "mix/mberil-mlp-state_prev_action-alpha0/seed1" in keys
    assert not any(k.startswith("pure/") and "alpha0" in k for k in keys)
    assert not any("bc-mlp" in k and "alpha0" in k for k in keys)


def test_dry_run_shards_and_filters(tmp_path, capsys):
    path = config(tmp_path)
    assert main(["compare", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# 20 of 20 jobs to run" in out and "sim-dataset" in out
    assert "algo.alpha=0.0" in out and "--nll" in out
    assert main(["compare", "--config", str(path), "--dry-run", "--shard", "1/3"]) == 0
    # 8 (dataset, inputs, seed) families; families 1, 4, 7: one of `mix` (bc, mberil,
    # mberil alpha 0) and two of `pure` (bc, mberil)
    assert "# 7 of 7 jobs to run" in capsys.readouterr().out
    assert main(["compare", "--config", str(path), "--dry-run", "--only", "pure/bc"]) == 0
    assert "# 4 of 4 jobs to run" in capsys.readouterr().out


def test_an_interrupted_training_is_resumed(tmp_path):
    cfg = load_config(config(tmp_path))
    args = argparse.Namespace(device=None, launcher="")
    plan, job = Plan(cfg, args), all_jobs(cfg)[0]
    assert "--config" in plan.train_command(job)
    (plan.job_dir(job) / "run" / "checkpoints" / "last").mkdir(parents=True)
    assert plan.train_command(job)[-3:] == ["train", "--resume",
                                            str(plan.job_dir(job) / "run")]
    torchrun = Plan(cfg, argparse.Namespace(device="cuda:1",
                                            launcher="torchrun --nproc_per_node=2"))
    command = torchrun.train_command(all_jobs(cfg)[1])
    assert command[:4] == ["torchrun", "--nproc_per_node=2", "-m", "mberil_ros.cli"]
    assert "device=cuda:1" in command


def test_a_job_runs_end_to_end_and_is_reused(tmp_path, capsys):
    path = config(tmp_path, seeds="[0]")
    only = ["--only", "mix/bc-mlp-state/"]
    assert main(["compare", "--config", str(path), *only]) == 0
    out_dir = tmp_path / "out"
    job = out_dir / "jobs" / "mix" / "bc-mlp-state" / "seed0"
    numbers = job_numbers(job / "eval.json")
    assert set(numbers) == {"success/train", "success/heldout_init",
                            "success/heldout_obstacles", "nll_pi/heldout_obstacles",
                            "nll_pi_trim/heldout_obstacles"}
    assert numbers["nll_pi_trim/heldout_obstacles"] <= numbers["nll_pi/heldout_obstacles"]
    md = (out_dir / "results.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| mix | bc-mlp-state |"))
    cells = [c.strip() for c in row.strip(" |").split("|")]
    assert cells[-3:] == [f"{numbers['nll_pi/heldout_obstacles']:.2f}",
                          f"{numbers['nll_pi_trim/heldout_obstacles']:.2f}", "-"]  # BC: no NLL_m
    assert "Not finished (9)" in md  # the other jobs of the matrix
    commit = (job / "commit.txt").read_text().strip()
    assert commit and f"Jobs ran at commit {commit} (1 jobs)." in md
    results = json.loads((out_dir / "results.json").read_text())
    assert results["jobs"]["mix/bc-mlp-state/seed0"] == numbers
    assert (out_dir / "plots" / "success.png").read_bytes()[:4] == b"\x89PNG"
    assert "sim-dataset" in (out_dir / "commands.txt").read_text()
    log = (job / "train.log").read_text()
    capsys.readouterr()
    assert main(["compare", "--config", str(path), *only]) == 0
    assert "0 of 1 jobs to run" in capsys.readouterr().out
    assert (job / "train.log").read_text() == log  # nothing trained again
    # a changed method is never mixed into the table nor silently replaced
    path.write_text(path.read_text().replace("overrides: [steps=4,", "overrides: [steps=5,"))
    assert main(["compare", "--config", str(path), *only]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mix/bc-mlp-state/seed0 (run.steps: 4 -> 5)" in err[0]
    assert job_numbers(job / "eval.json") == numbers


def test_job_numbers_read_both_shapes_of_offline_nll(tmp_path):
    """eval.json keys offline_nll by checkpoint; a job finished before that keyed it by test
    set alone, and a resumed comparison still reads it."""
    results = [{"controller": "runs/x/checkpoints/best", "suite": "train",
                "summary": {"success": 0.9}},
               {"controller": "expert", "suite": "train", "summary": {"success": 1.0}}]
    numbers = {"nll_pi": 3.0, "nll_pi_trim": -1.0, "nll_m": -20.0, "pi_expert_z": 0.7}
    want = {"success/train": 0.9, "nll_pi/t_init": 3.0, "nll_pi_trim/t_init": -1.0,
            "nll_m/t_init": -20.0}
    for nll in ({"runs/x/checkpoints/best": {"test/t_init": numbers}},
                {"test/t_init": numbers}):
        path = tmp_path / "eval.json"
        path.write_text(json.dumps({"results": results, "offline_nll": nll}))
        assert job_numbers(path) == want


def test_eval_suites_checkpoint_and_seed_and_a_datasets_suite(tmp_path):
    """The shift test's shape (config/shift_test.yaml): data drawn from another suite, the
    `last` checkpoint evaluated on the named suites at a given seed, and the report's columns
    following those suites."""
    path = config(tmp_path, seeds="[0]", eval_suites="[shift_check, train]",
                  eval_checkpoint="last", eval_seed="500000")
    path.write_text(path.read_text().replace("seed: 10}", "seed: 10, suite: shift_fit}"))
    assert main(["compare", "--config", str(path), "--only", "mix/bc-mlp-state/"]) == 0
    out_dir = tmp_path / "out"
    job = out_dir / "jobs" / "mix" / "bc-mlp-state" / "seed0"
    report = json.loads((job / "eval.json").read_text())
    assert [r["suite"] for r in report["results"]] == ["shift_check", "train"]
    assert report["seeds"][0] == EVAL_SEED_BASE + 500000
    last = (job / "run" / "checkpoints" / "last").resolve()
    assert Path(report["results"][0]["controller"]).resolve() == last
    md = (out_dir / "results.md").read_text()
    assert "| success shift_check | success train |" in md and "heldout_init |" not in md
    assert "`last` checkpoints" in md
    commands = (out_dir / "commands.txt").read_text().splitlines()
    mix = next(c for c in commands if "sim-dataset" in c and "/datasets/mix" in c)
    assert mix.endswith("--suite shift_fit")
    assert not any("--suite shift_fit" in c for c in commands if "/datasets/pure" in c)


def warm_started(tmp_path: Path) -> Path:
    """config() with Offline-MB-ERIL starting from the BC job, and `mix` restricted."""
    path = config(tmp_path)
    text = path.read_text().replace(
        "mberil-mlp: {config: train.yaml,", "mberil-mlp: {config: train.yaml, init_from: bc-mlp,")
    text = text.replace("seed: 10}", "seed: 10, policy_inputs: [state]}")
    path.write_text(text)
    return path


def test_init_from_starts_each_mberil_job_from_its_own_bc_job(tmp_path):
    cfg = load_config(warm_started(tmp_path))
    jobs = all_jobs(cfg)
    # `mix`: state only (bc, mberil, mberil alpha 0) x 2 seeds; `pure`: both inputs x 2 x 2
    assert len(jobs) == 6 + 8
    first_warm = next(i for i, j in enumerate(jobs) if j.warm_start is not None)
    assert all(j.warm_start is None for j in jobs[:first_warm])  # warm starts run first
    assert all(j.warm_start is not None for j in jobs[first_warm:])
    plan = Plan(cfg, argparse.Namespace(device=None, launcher=""))
    for job in jobs[first_warm:]:
        warm = job.warm_start
        assert (warm.method, warm.dataset, warm.inputs, warm.seed, warm.alpha0) == (
            "bc-mlp", job.dataset, job.inputs, job.seed, False)
        assert f"algo.init_policy={plan.best(warm)}" in plan.train_command(job)
    assert not any("init_policy" in a for j in jobs[:first_warm]
                   for a in plan.train_command(j))


def test_warm_started_jobs_run_after_and_from_their_bc_job(tmp_path):
    path = warm_started(tmp_path)
    path.write_text(path.read_text().replace("seeds: [0, 1]", "seeds: [0]"))
    assert main(["compare", "--config", str(path), "--jobs", "2", "--only", "mix/"]) == 0
    jobs = tmp_path / "out" / "jobs" / "mix"
    bc_best = jobs / "bc-mlp-state" / "seed0" / "run" / "checkpoints" / "best"
    for group in ("bc-mlp-state", "mberil-mlp-state", "mberil-mlp-state-alpha0"):
        assert job_numbers(jobs / group / "seed0" / "eval.json")
    for group in ("mberil-mlp-state", "mberil-mlp-state-alpha0"):
        saved = (jobs / group / "seed0" / "run" / "config.yaml").read_text()
        assert f"init_policy: {bc_best}" in saved
    bc = job_numbers(jobs / "bc-mlp-state" / "seed0" / "eval.json")
    mb = job_numbers(jobs / "mberil-mlp-state" / "seed0" / "eval.json")
    md = (tmp_path / "out" / "results.md").read_text()
    paired = next(line for line in md.splitlines()
                  if line.startswith("| mix | mberil-mlp-state - bc-mlp-state | 1 |"))
    delta = mb["nll_pi/heldout_obstacles"] - bc["nll_pi/heldout_obstacles"]
    assert paired.rstrip(" |").endswith(f"{delta:.2f}")


def test_a_job_whose_warm_start_is_missing_is_refused_in_one_line(tmp_path, capsys):
    path = warm_started(tmp_path)
    assert main(["compare", "--config", str(path), "--only", "pure/mberil-mlp-state/seed0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warm start pure/bc-mlp-state/seed0 is neither trained" in err[0]


def _dataset_flags(path: Path, flag: str) -> dict[str, str | None]:
    """The value of sim-dataset's ``flag`` in each dataset / test-set command of a compare
    config; None where compare leaves it to sim-dataset's default."""
    plan = Plan(load_config(path), argparse.Namespace(device=None, launcher=""))
    return {p.name: argv[argv.index(flag) + 1] if flag in argv else None
            for p, argv in plan.dataset_commands()}


def test_settle_ticks_pins_the_datasets_and_test_sets_that_name_it(tmp_path):
    path = config(tmp_path, datasets="{a: {expert: 2, settle_ticks: 7}, b: {expert: 2}}",
                  test="{episodes: 2, settle_ticks: 9, suites: [heldout_init]}",
                  alpha_ablation="[]")
    flags = _dataset_flags(path, "--settle-ticks")
    assert flags["a"] == "7" and flags["heldout_init"] == "9"
    assert flags["b"] is None  # sim-dataset's default


def test_expert_fraction_is_passed_only_when_set(tmp_path):
    path = config(tmp_path, datasets="{a: {expert: 2, suboptimal: 4, expert_fraction: 0.5}, "
                                     "b: {expert: 2, suboptimal: 4}}", alpha_ablation="[]")
    flags = _dataset_flags(path, "--expert-fraction")
    assert flags["a"] == "0.5"
    assert flags["b"] is None  # sim-dataset's default, as without compare


@pytest.mark.parametrize("extra,needle", [
    ({"nonsense": "1"}, "unknown config key 'nonsense'"),
    ({"eval_checkpoint": "worst"}, "eval_checkpoint: expected best or last, got 'worst'"),
    ({"eval_suites": "[train, nope]"}, "eval_suites: unknown suite 'nope'"),
    ({"eval_suites": "train"}, "eval_suites: expected a list of suite names"),
    ({"datasets": "{d: {expert: 2, suite: nope}}", "alpha_ablation": "[]"},
     "datasets.d.suite: unknown suite 'nope'"),
    ({"alpha_ablation": "[nowhere]"}, "alpha_ablation: unknown datasets ['nowhere']"),
    ({"methods": "{a: {config: train.yaml, init_from: b}}"}, "methods.a.init_from: 'b'"),
    ({"methods": "{a: {config: train_bc.yaml}, b: {config: train.yaml, init_from: a}}",
      "datasets": "{d: {expert: 2, methods: [b]}}", "alpha_ablation": "[]"},
     "datasets.d.methods: b starts from a"),
    ({"datasets": "{d: {expert: 2, policy_inputs: [pixels]}}", "alpha_ablation": "[]"},
     "datasets.d.policy_inputs: ['pixels']"),
    ({"methods": "{a: {config: train_bc.yaml}, b: {config: train.yaml, init_from: a, "
                 "overrides: [algo.network.d_model=8]}}"},
     "methods.b: init_from a needs the same algo.network settings, but ['d_model'] differ"),
])
def test_bad_config_is_one_line(tmp_path, capsys, extra, needle):
    path = config(tmp_path, **extra)
    assert main(["compare", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_bad_shard_is_one_line(tmp_path, capsys):
    assert main(["compare", "--config", str(config(tmp_path)), "--shard", "3/3"]) == 2
    assert "--shard" in capsys.readouterr().err


def test_the_shipped_comparison_config_is_valid(tmp_path):
    """Every job of config/compare.yaml resolves to a valid training config."""
    from mberil_ros.paths import config_file

    for name, count in (("compare.yaml", 4 * 2 * 4 * 3 + 2 * 2 * 3),  # + alpha ablation
                        ("compare_cpu.yaml", 4 * 2 * 3 + 3 * 3),  # mixed50: bc, mberil x2
                        ("shift_test.yaml", 2 * 3)):
        _check_shipped(config_file(name), count)
    # the shift test evaluates as docs/learning.md's shift numbers were taken
    cfg = load_config(config_file("shift_test.yaml"))
    plan = Plan(cfg, argparse.Namespace(device=None, launcher=""))
    argv = " ".join(plan.eval_command(all_jobs(cfg)[0]))
    assert "/checkpoints/last --suite shift_check --suite shift_beside --suite train" in argv
    assert "--episodes 100 --seed 500000" in argv
    # its two methods differ by the obstacle gate alone, whatever the YAML default becomes
    from mberil_ros.algos.train_config import load_train_config
    gate = {}
    for job in all_jobs(cfg):
        train_cfg = load_train_config(Path(config_file(cfg.methods[job.method]["config"])),
                                      plan.overrides(job))
        gate[job.method] = train_cfg.algo.network.policy_obstacle_gate
    assert gate == {"bc-mamba": False, "bc-mamba-gate": True}


def test_the_shipped_configs_gate_the_mamba_and_keep_the_mlp_recipe_as_measured():
    """The shift test adopted the obstacle gate (docs/learning.md): on in both training
    YAMLs; the MLP recipe (distractors) was measured without it, so compare.yaml turns it off
    wherever it sets distractors."""
    from mberil_ros.algos.train_config import load_train_config
    from mberil_ros.paths import config_file

    for name in ("train.yaml", "train_bc.yaml"):
        cfg = load_train_config(config_file(name), ["dataset=x"])
        assert cfg.algo.network.backbone == "mamba" and cfg.algo.network.policy_obstacle_gate
    cfg = load_config(config_file("compare.yaml"))
    for method, spec in cfg.methods.items():
        if "algo.data.distractors=0.5" in spec["overrides"]:
            assert "algo.network.policy_obstacle_gate=false" in spec["overrides"], method


def _check_shipped(path: Path, count: int) -> None:
    from mberil_ros.algos.train_config import load_train_config
    from mberil_ros.paths import config_file

    cfg = load_config(path)
    jobs = all_jobs(cfg)
    assert len(jobs) == count
    plan = Plan(cfg, argparse.Namespace(device=None, launcher=""))
    for job in jobs:  # (what a fresh job runs, whatever OUTPUT holds here)
        load_train_config(Path(config_file(cfg.methods[job.method]["config"])),
                          plan.overrides(job))
