"""`mberil train`: run folder, checkpoints, resume after SIGKILL, DDP, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from algos_tester import MBERIL_TINY, TINY_RUN
from safetensors.torch import load_file

from mberil_ros.algos import checkpoint as ckpt
from mberil_ros.cli import main as cli_main
from mberil_ros.paths import config_file
from mberil_ros.sim.rollout_dataset import generate_dataset

TINY = TINY_RUN


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("data") / "demos", 10, 5, seed=0)


BC_CONFIG = str(config_file("train_bc.yaml"))


def train(args: list[str]) -> int:
    if "--resume" not in args:
        args = ["--config", BC_CONFIG, *args]
    return cli_main(["train", *args])


def metrics(run: Path, group: str = "train") -> dict[int, dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if r["group"] == group}


def test_run_folder_checkpoints_and_links(tmp_path, dataset, capsys):
    run = tmp_path / "runs" / "bc"
    assert train([f"dataset={dataset}", "algorithm=bc", "steps=30", "eval_every=10",
                  "checkpoint_every=10", "keep_checkpoints=2", "log_every=5",
                  f"output_dir={tmp_path / 'runs'}", "name=bc", *TINY]) == 0
    checkpoints = run / "checkpoints"
    done = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("training done: 30 steps"))
    best_step = int(os.readlink(checkpoints / "best"))  # eval_episodes 0: by NLL_pi alone
    assert f"; best at step {best_step} (NLL_pi " in done and done.endswith("chosen by NLL_pi)")
    assert os.readlink(checkpoints / "last") == "00000030"
    assert (checkpoints / "best").is_symlink()
    kept = sorted(p.name for p in checkpoints.iterdir() if p.name.isdigit())
    assert kept[-2:] == ["00000020", "00000030"]
    assert not list(checkpoints.glob(".*tmp*"))
    last = checkpoints / "last"
    for name in (ckpt.WEIGHTS, ckpt.POLICY_CONFIG, ckpt.NORMALIZATION, ckpt.TRAINING_STATE):
        assert (last / name).is_file()
    weights = load_file(str(last / ckpt.WEIGHTS))
    config = json.loads((last / ckpt.POLICY_CONFIG).read_text())
    assert any(k.startswith(config["weights_prefix"] + ".") for k in weights)
    assert json.loads((last / ckpt.NORMALIZATION).read_text())
    state = torch.load(last / ckpt.TRAINING_STATE, weights_only=True)
    assert state["step"] == 30
    assert sorted(p.name for p in (run / "eval").iterdir()) == [
        "00000010.json", "00000020.json", "00000030.json"]
    assert "nll_pi" in json.loads((run / "eval" / "00000030.json").read_text())
    assert list(run.glob("events.out.tfevents.*"))
    assert set(metrics(run)) == {5, 10, 15, 20, 25, 30}
    resolved = (run / "config.yaml").read_text()
    assert "algorithm: bc" in resolved and "d_model: 16" in resolved


CONFIGS = {"bc": (BC_CONFIG, []),
           "offline_mberil": (str(config_file("train.yaml")), MBERIL_TINY)}


def _command(dataset: Path, runs: Path, extra: list[str], algorithm: str = "bc") -> list[str]:
    config, algo_extra = CONFIGS[algorithm]
    return [sys.executable, "-m", "mberil_ros.cli", "train", "--config", config,
            *algo_extra, f"dataset={dataset}",
            f"output_dir={runs}", "deterministic=true", "log_every=1", *TINY, *extra]


@pytest.mark.parametrize("algorithm", ["bc", "offline_mberil"])
def test_resume_after_sigkill_continues_exactly(tmp_path, dataset, algorithm):
    runs = tmp_path / "runs"
    common = [f"algorithm={algorithm}", "steps=60", "checkpoint_every=5", "eval_every=1000"]
    # Uninterrupted reference.
    subprocess.run(_command(dataset, runs, [*common, "name=ref"], algorithm), check=True,
                   capture_output=True)
    # Same run, killed with SIGKILL as soon as its first checkpoint exists.
    victim = subprocess.Popen(_command(dataset, runs, [*common, "name=killed"], algorithm),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = runs / "killed" / "checkpoints" / "last"
    deadline = time.monotonic() + 120
    while not last.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "run finished before it could be killed"
    resumed_from = int(os.readlink(last))
    assert resumed_from < 60
    assert train(["--resume", str(runs / "killed")]) == 0
    assert os.readlink(last) == "00000060"  # reaches the same step count
    ref, got = metrics(runs / "ref"), metrics(runs / "killed")
    assert max(got) == 60
    for step in range(resumed_from + 1, resumed_from + 11):
        assert got[step] == ref[step], f"step {step} differs after resume"


def test_ddp_two_processes_stay_identical(tmp_path, dataset):
    runs = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "mberil_ros.cli", "train", "--config", BC_CONFIG, f"dataset={dataset}",
         "algorithm=bc", "steps=12", "checkpoint_every=6", "eval_every=6",
         f"output_dir={runs}", "name=ddp", *TINY],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 x 2 process(es) = 8 whole episodes" in result.stdout
    assert result.stdout.count("parameters identical across 2 ranks") == 2  # steps 6 and 12
    checkpoints = runs / "ddp" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir() if p.name.isdigit()) == [
        "00000006", "00000012"]
    state = torch.load(checkpoints / "last" / ckpt.TRAINING_STATE, weights_only=True)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2


def test_unknown_config_key_is_one_line_error(tmp_path, dataset, capsys):
    assert train([f"dataset={dataset}", "algorithm=bc", "algo.lerning_rate=3", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown config key 'algo.lerning_rate'" in err and "\n" not in err
    assert train([f"dataset={dataset}", "stepz=3"]) == 2
    assert "unknown config key 'stepz'" in capsys.readouterr().err


def test_checkpoint_from_another_architecture_is_refused(tmp_path, dataset, capsys):
    runs = tmp_path / "runs"
    assert train([f"dataset={dataset}", "algorithm=bc", "steps=2", "checkpoint_every=2",
                  f"output_dir={runs}", "name=a", *TINY]) == 0
    assert train(["--resume", str(runs / "a"), "steps=4", "algo.network.d_model=32"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint from another architecture" in err and "shape mismatch" in err


def test_missing_dataset_and_existing_run(tmp_path, dataset, capsys):
    assert train([f"dataset={tmp_path / 'nope'}", "algorithm=bc"]) == 2
    assert "not a folder" in capsys.readouterr().err
    runs = tmp_path / "runs"
    args = [f"dataset={dataset}", "algorithm=bc", "steps=1", "checkpoint_every=1",
            f"output_dir={runs}", "name=x", *TINY]
    assert train(args) == 0
    assert train(args) == 2
    assert "already has checkpoints" in capsys.readouterr().err


def test_alpha_without_suboptimal_episodes_is_refused(tmp_path, capsys):
    experts_only = generate_dataset(tmp_path / "experts", 6, 0, seed=3)
    args = ["train", "--config", str(config_file("train.yaml")), f"dataset={experts_only}",
            "algo.alpha=0.3", f"output_dir={tmp_path / 'runs'}", *TINY]
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "alpha" in err and str(experts_only.name) in err and "\n" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.safetensors"))


def test_steps_ending_inside_the_warm_start_are_pointed_out(tmp_path, dataset, capsys):
    """train.yaml's steps include the warm start: a run too short for any adversarial
    iteration says so, one that reaches them does not."""
    base = ["train", "--config", str(config_file("train.yaml")), *MBERIL_TINY,
            f"dataset={dataset}", f"output_dir={tmp_path / 'runs'}", *TINY]
    assert cli_main([*base, "steps=3", "name=short"]) == 0
    assert "steps=3 ends inside the warm start (3 more steps)" in capsys.readouterr().out
    assert cli_main([*base, "steps=4", "name=long"]) == 0
    assert "ends inside the warm start" not in capsys.readouterr().out


GROUP_TEARDOWN = """
import os, torch, torch.distributed as dist
from mberil_ros.algos.distributed import join_process_group
join_process_group("gloo")
torch.optim.AdamW(torch.nn.Linear(2, 2).parameters())  # imports torch._dynamo
x = torch.ones(3)
dist.all_reduce(x)
dist.destroy_process_group()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print("gloo threads left:", sorted(n for n in names if "gloo" in n))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_process_group_teardown_leaves_no_gloo_thread(tmp_path):
    """The cause of the DDP exit abort: a group that torch._dynamo still references is not
    freed by destroy_process_group, and its gloo threads run into interpreter shutdown."""
    port = 29000 + os.getpid() % 2000
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0",
               WORLD_SIZE="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", GROUP_TEARDOWN], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "gloo threads left: []" in result.stdout, result.stdout
