"""`mberil train --fork CHECKPOINT`: a new run from a saved step of another."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from algos_tester import MBERIL_TINY, TINY_RUN

from mberil_ros.algos import checkpoint as ckpt
from mberil_ros.algos.runner import prepare_run
from mberil_ros.cli import main as cli_main
from mberil_ros.errors import UserError
from mberil_ros.paths import config_file
from mberil_ros.sim.rollout_dataset import generate_dataset

TINY = [*TINY_RUN, "deterministic=true", "log_every=1"]  # exact, comparable row by row


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("data") / "demos", 10, 5, seed=0)


def train(config: str, args: list[str]) -> int:
    return cli_main(["train", "--config", str(config_file(config)), *args])


def rows(run: Path, group: str = "train") -> dict[int, dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines) if r["group"] == group}


def tensorboard(run: Path, tag: str) -> dict[int, float]:
    """Every TensorBoard scalar of ``tag`` in a run folder, by step (all its event files)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


def tree(path: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime)
            for p in sorted(path.rglob("*"))}


def test_fork_continues_as_the_source_did_and_leaves_it_alone(tmp_path, dataset, capsys):
    runs = tmp_path / "runs"
    assert train("train.yaml", [*MBERIL_TINY, *TINY, f"dataset={dataset}", "steps=16",
                                "checkpoint_every=4", "eval_every=4", "keep_checkpoints=0",
                                f"output_dir={runs}", "name=src"]) == 0
    source = runs / "src"
    assert os.readlink(source / "checkpoints" / "warmstart") == "00000003"
    before = tree(source)

    # no overrides: the same future, step for step
    assert cli_main(["train", "--fork", str(source / "checkpoints" / "00000008")]) == 0
    assert f"into {runs / 'src-from-00000008'}" in capsys.readouterr().out
    fork = runs / "src-from-00000008"
    got, ref = rows(fork), rows(source)
    assert sorted(got) == sorted(ref) == list(range(1, 17))
    lines = (fork / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len((source / "metrics.jsonl").read_text().splitlines())  # no rows twice
    for step in range(1, 17):
        assert got[step] == ref[step], f"step {step} differs in the fork"
    links = {n: os.readlink(fork / "checkpoints" / n) for n in ("last", "warmstart", "best")}
    assert links["last"] == "00000016" and links["warmstart"] == "00000003"
    assert (fork / "checkpoints" / links["best"] / ckpt.WEIGHTS).is_file()
    assert sorted(p.name for p in (fork / "eval").iterdir()) == [
        "00000004.json", "00000008.json", "00000012.json", "00000016.json"]
    record = json.loads((fork / "fork.json").read_text())
    assert record["step"] == 8 and record["source"] == str(source.resolve())
    assert "name: src-from-00000008" in (fork / "config.yaml").read_text()
    assert tree(source) == before  # only read
    # TensorBoard shows the copied history too, not only the steps after the fork
    tag = next(f"train/{k}" for k in ref[1] if k not in ("step", "group"))
    board = tensorboard(fork, tag)
    assert sorted(board) == list(range(1, 17))
    assert board == pytest.approx(tensorboard(source, tag))

    # from the warm start with another setting: shared history, another future
    assert cli_main(["train", "--fork", str(source / "checkpoints" / "warmstart"),
                     "name=anchor", "algo.lambda_nll=3"]) == 0
    other = rows(runs / "anchor")
    assert all(other[s] == ref[s] for s in (1, 2, 3))
    assert other[16] != ref[16]
    assert "lambda_nll: 3" in (runs / "anchor" / "config.yaml").read_text()
    assert tree(source) == before


def test_a_pruned_best_is_chosen_again(tmp_path, dataset, capsys, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.chdir(tmp_path)
    # lr 0 after step 4: NLL_pi stops improving, so the state at 12 says best = 4
    assert train("train_bc.yaml", [*TINY, f"dataset={dataset}", "algorithm=bc", "steps=12",
                                   "algo.lr_decay_steps=4", "checkpoint_every=4",
                                   "eval_every=4", "keep_checkpoints=0",
                                   "output_dir=runs", "name=src"]) == 0
    checkpoints = runs / "src" / "checkpoints"
    assert os.readlink(checkpoints / "best") == "00000004"
    shutil.rmtree(checkpoints / "00000004")  # as if pruned after best had moved on
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the fork still lands beside its source
    assert cli_main(["train", "--config", str(config_file("train.yaml")), "--fork",
                     str(checkpoints / "00000012"), "name=f", "steps=16"]) == 0
    out = capsys.readouterr().out
    assert "best checkpoint at step 4 is gone" in out
    assert "train.yaml is ignored: --resume and --fork use the run's own config.yaml" in out
    assert "algorithm: bc" in (runs / "f" / "config.yaml").read_text()
    state = torch.load(checkpoints / "00000012" / ckpt.TRAINING_STATE, weights_only=True)
    assert state["best_step"] == 4  # the source's own file is untouched
    assert os.readlink(runs / "f" / "checkpoints" / "best") == "00000016"


def test_fork_refusals_are_one_line_and_leave_nothing(tmp_path, dataset, capsys, monkeypatch):
    runs = tmp_path / "runs"
    assert train("train_bc.yaml", [*TINY, f"dataset={dataset}", "algorithm=bc", "steps=2",
                                   "checkpoint_every=2", f"output_dir={runs}",
                                   "name=src"]) == 0
    last = runs / "src" / "checkpoints" / "last"
    capsys.readouterr()

    def refused(argv: list[str], message: str) -> None:
        listing = sorted(p.name for p in runs.iterdir())
        assert cli_main(["train", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
        assert sorted(p.name for p in runs.iterdir()) == listing  # nothing half-made

    refused(["--fork", str(last), "name=src"], "that is the source run")
    (runs / "taken").mkdir()
    refused(["--fork", str(last), "name=taken"], "already exists; pick another name=")
    refused(["--fork", str(tmp_path / "nowhere")], "no complete checkpoint")
    export = tmp_path / "export"
    shutil.copytree(last, export)
    refused(["--fork", str(export)], "not a checkpoint of a run folder")
    (last / ckpt.TRAINING_STATE).rename(tmp_path / "state.pt")
    refused(["--fork", str(last)], "a policy-only export cannot be forked")
    (tmp_path / "state.pt").rename(last / ckpt.TRAINING_STATE)
    refused(["--fork", str(last), "algo.nope=1"], "unknown config key 'algo.nope'")
    monkeypatch.setenv("WORLD_SIZE", "2")
    refused(["--fork", str(last)], "--fork under torchrun")
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(SystemExit):
        cli_main(["train", "--fork", str(last), "--resume", str(runs / "src")])
    assert "not allowed with argument" in capsys.readouterr().err
    # trainer_node takes both as parameters: the shared prepare_run refuses the pair
    with pytest.raises(UserError, match="resume and fork are both set"):
        prepare_run(None, [], runs / "src", last)
