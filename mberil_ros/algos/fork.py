"""`mberil train --fork CHECKPOINT [name=NEW] [key=value ...]`: a new run from a saved step.

The new run folder starts as a copy of the source run at that step: the checkpoint (weights,
optimizers, RNG and algorithm state), the `warmstart` and `best` checkpoints it still
refers to, and the metrics.jsonl rows (also replayed as TensorBoard scalars) and eval/*.json
files up to that step. The runner then resumes it, so with no overrides the fork continues
exactly as the source did after that step (with `deterministic=true` on CPU); with
overrides it is the same history and another future, e.g. the adversarial phase from one
warm start under two settings:

    mberil train --fork runs/A/checkpoints/warmstart name=A-anchor1 algo.lambda_nll=1

The source run is only read. The new folder is assembled under a hidden name and renamed
into place, so an error leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from mberil_ros.algos import checkpoint as ckpt
from mberil_ros.algos.train_config import TrainConfig, load_train_config
from mberil_ros.errors import UserError
from mberil_ros.paths import apply_umask

FORK_RECORD = "fork.json"  # in the new run folder: where it came from


def source_of(checkpoint: Path) -> tuple[Path, Path]:
    """(checkpoint step folder, its run folder) for a checkpoint folder, link or run folder."""
    folder = ckpt.resolve(checkpoint)
    run = folder.parent.parent
    if not folder.name.isdigit() or folder.parent.name != "checkpoints" or not (
            run / "config.yaml").is_file():
        raise UserError(f"{checkpoint}: not a checkpoint of a run folder (expected "
                        "RUN/checkpoints/STEP, a link there such as warmstart, or RUN)")
    if not (folder / ckpt.TRAINING_STATE).is_file():
        raise UserError(f"{folder / ckpt.TRAINING_STATE}: missing (a policy-only export "
                        "cannot be forked)")
    return folder, run


def default_fork_name(run: Path, step: int) -> str:
    return f"{run.name}-from-{ckpt.step_dir_name(step)}"


def prepare_fork(checkpoint: Path, overrides: list[str]) -> tuple[TrainConfig, Path]:
    """Resolve the fork's config (the source's config.yaml and ``overrides``) and build its
    run folder; the caller resumes it."""
    folder, source = source_of(checkpoint)
    step = int(folder.name)
    base = yaml.safe_load((source / "config.yaml").read_text())
    if not any(o.startswith("name=") for o in overrides):
        base["name"] = default_fork_name(source, step)
    if not any(o.startswith("output_dir=") for o in overrides):
        base["output_dir"] = str(source.parent)  # beside the source, from any folder
    cfg = load_train_config(None, overrides, base=base)
    run_dir = Path(cfg.run.output_dir) / cfg.run.name
    if run_dir.resolve() == source.resolve():
        raise UserError(f"name={cfg.run.name}: that is the source run {source}; a fork "
                        "needs a new name (or continue the source with --resume)")
    if run_dir.exists():
        raise UserError(f"{run_dir}: already exists; pick another name=")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.fork-", dir=run_dir.parent))
    try:
        _copy_history(folder, source, step, tmp)
        (tmp / FORK_RECORD).write_text(json.dumps(
            {"source": str(source.resolve()), "checkpoint": str(folder), "step": step},
            indent=2) + "\n")
        apply_umask(tmp)  # mkdtemp's 0700 would hide the run from other users
        os.rename(tmp, run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"forked {checkpoint} into {run_dir}")
    return cfg, run_dir


def _copy_history(folder: Path, source: Path, step: int, dest: Path) -> None:
    src_root, root = source / "checkpoints", dest / "checkpoints"
    root.mkdir()
    shutil.copytree(folder, root / folder.name)
    state = ckpt.load_training_state(folder, mmap=True)
    links = {"last": step}
    warm, best = state.get("warm_step"), state.get("best_step")
    if warm is not None and warm <= step:
        links["warmstart"] = warm
    if best is not None and best <= step:
        if (src_root / ckpt.step_dir_name(best) / ckpt.WEIGHTS).is_file():
            links["best"] = best
        else:  # pruned since: the fork chooses its best afresh from its own evaluations
            _forget_best(root / folder.name, state)
            print(f"note: the source's best checkpoint at step {best} is gone; the fork "
                  "chooses its best from its own evaluations")
    for link, target in links.items():
        name = ckpt.step_dir_name(target)
        if not (root / name).exists():
            if not (src_root / name / ckpt.WEIGHTS).is_file():
                raise UserError(f"{src_root / name}: missing, but {folder} refers to it as "
                                f"{link}")
            shutil.copytree(src_root / name, root / name)
        ckpt.point(root, link, name)
    rows = _copy_metrics(source / "metrics.jsonl", dest / "metrics.jsonl", step)
    _replay_tensorboard(rows, dest)
    if (source / "eval").is_dir():
        (dest / "eval").mkdir()
        for f in sorted((source / "eval").glob("*.json")):
            if f.stem.isdigit() and int(f.stem) <= step:
                shutil.copy2(f, dest / "eval" / f.name)


def _forget_best(folder: Path, state: dict[str, Any]) -> None:
    torch.save(dict(state, best_nll_pi=None, best_score=None, best_step=None,
                    evals_since_best=0), folder / ckpt.TRAINING_STATE)


def _copy_metrics(src: Path, dest: Path, step: int) -> list[dict[str, Any]]:
    """Copy the rows up to ``step``; returns them."""
    if not src.is_file():
        return []
    keep: list[tuple[str, dict[str, Any]]] = []
    for line in src.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a run killed mid-line: the torn row is dropped
            continue
        if int(row.get("step", step + 1)) <= step:
            keep.append((line, row))
    dest.write_text("".join(f"{line}\n" for line, _ in keep))
    return [row for _, row in keep]


def _replay_tensorboard(rows: list[dict[str, Any]], dest: Path) -> None:
    """The history's scalars as a TensorBoard event file of the fork, so that its curves
    start at step 1 as the source's do (the source's event files cannot be cut at a step
    without rewriting them; metrics.jsonl holds the same values under the same tags)."""
    if not rows:
        return
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(dest), filename_suffix=".fork-history")
    try:
        for row in rows:
            for key, value in row.items():
                if key not in ("step", "group") and isinstance(value, (int, float)):
                    writer.add_scalar(f"{row['group']}/{key}", value, int(row["step"]))
    finally:
        writer.close()
