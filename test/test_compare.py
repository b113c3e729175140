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
    assert "# 7 of 7 jobs to run" in capsys.readouterr().out  # jobs 1, 4, ..., 19
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
                            "success/heldout_obstacles", "nll_pi/heldout_obstacles"}
    md = (out_dir / "results.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| mix | bc-mlp-state |"))
    assert f"{numbers['nll_pi/heldout_obstacles']:.2f}" in row
    assert "Not finished (9)" in md  # the other jobs of the matrix
    results = json.loads((out_dir / "results.json").read_text())
    assert results["jobs"]["mix/bc-mlp-state/seed0"] == numbers
    assert (out_dir / "plots" / "success.png").read_bytes()[:4] == b"\x89PNG"
    assert "sim-dataset" in (out_dir / "commands.txt").read_text()
    log = (job / "train.log").read_text()
    capsys.readouterr()
    assert main(["compare", "--config", str(path), *only]) == 0
    assert "0 of 1 jobs to run" in capsys.readouterr().out
    assert (job / "train.log").read_text() == log  # nothing trained again


@pytest.mark.parametrize("extra,needle", [
    ({"nonsense": "1"}, "unknown config key 'nonsense'"),
    ({"alpha_ablation": "[nowhere]"}, "alpha_ablation: unknown datasets ['nowhere']"),
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
    from mberil_ros.algos.train_config import load_train_config
    from mberil_ros.paths import config_file

    cfg = load_config(config_file("compare.yaml"))
    jobs = all_jobs(cfg)
    assert len(jobs) == 4 * 2 * 4 * 3 + 2 * 2 * 3  # + the alpha ablation on mixed50
    plan = Plan(cfg, argparse.Namespace(device=None, launcher=""))
    for job in jobs:
        argv = plan.train_command(job)
        at = argv.index("--config")
        load_train_config(Path(argv[at + 1]), argv[at + 2:])
