"""`mberil sim-dataset`: a demonstration dataset straight from the in-process simulator.

The same files as `mberil convert` of a recorded bag (rollout_dataset.py), without ROS: the
quickest way to get the data the benchmark numbers in docs/learning.md were measured on.
With ``--jobs J`` the episodes are split into J parts generated in parallel processes
(each part its own layout-seed range) and merged into one dataset, written atomically.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mberil_ros.errors import UserError
from mberil_ros.sim.spaces import ARMS, SETTLE_TICKS
from mberil_ros.sim.suites import ALL_SUITES

# Layout seeds of datasets stay below the evaluation seeds (eval/closed_loop.py: 10^6+).
MAX_DATA_SEED = 1_000_000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", help="dataset folder to create")
    p.add_argument("--expert", type=int, default=600, metavar="N",
                   help="expert episodes, label 'expert' (default 600)")
    p.add_argument("--suboptimal", type=int, default=200, metavar="N",
                   help="unlabeled episodes, label 'suboptimal' (default 200)")
    p.add_argument("--expert-fraction", type=float, default=0.25, metavar="F",
                   help="share of the unlabeled episodes run by the expert: positives for "
                        "PU learning (default 0.25)")
    p.add_argument("--suite", default="train", choices=sorted(ALL_SUITES),
                   help="task suite the layouts are drawn from (default train)")
    p.add_argument("--arm", default="right", choices=ARMS)
    p.add_argument("--seed", type=int, default=0,
                   help=f"first layout seed (default 0; data seeds stay < {MAX_DATA_SEED})")
    p.add_argument("--settle-ticks", type=int, default=SETTLE_TICKS, metavar="N",
                   help="ticks a successful episode goes on after reaching the target, the "
                        f"hand held there (default {SETTLE_TICKS})")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="parallel processes (default: one per core)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")


def _part(args: tuple) -> str:
    from mberil_ros.sim.rollout_dataset import generate_dataset

    out, expert, suboptimal, suite, seed, arm, fraction, settle = args
    return str(generate_dataset(out, expert, suboptimal, suite, seed, arm=arm,
                                expert_fraction=fraction, settle_steps=settle))


def _shares(n: int, jobs: int) -> list[int]:
    return [n // jobs + (1 if i < n % jobs else 0) for i in range(jobs)]


def merge(parts: list[Path], out: Path, overwrite: bool) -> Path:
    """One dataset from several with the same features: episodes in part order."""
    from mberil_ros.data.dataset import Dataset
    from mberil_ros.data.layout import INFO_OWNED, is_writer_column
    from mberil_ros.data.writer import DatasetWriter

    first = Dataset(parts[0])
    writer = DatasetWriter(out, overwrite=overwrite, vectors=first.vectors)
    try:
        k = 0
        for part in parts:
            ds = Dataset(part)
            for i, row in enumerate(ds.episodes):
                meta = {key: v for key, v in row.items() if not is_writer_column(key)}
                meta["source_episode"] = k
                writer.add_frames(meta, ds.episode_columns(i), ds.episode(i).timestamp,
                                  task=row["tasks"][0])
                k += 1
        info = {key: v for key, v in first.info.items() if key not in INFO_OWNED}
        return writer.finish(info)
    except BaseException:
        writer.abort()
        raise


def run(args: argparse.Namespace) -> int:
    from mberil_ros.data.writer import check_output

    out = Path(args.output)
    check_output(out, args.overwrite)
    if args.expert < 1 or args.suboptimal < 0:
        raise UserError("--expert must be >= 1 and --suboptimal >= 0")
    if not 0.0 <= args.expert_fraction <= 1.0:
        raise UserError(f"--expert-fraction must be in [0, 1], got {args.expert_fraction}")
    if args.settle_ticks < 0:
        raise UserError(f"--settle-ticks must be >= 0, got {args.settle_ticks}")
    jobs = max(1, min(args.jobs, args.expert))
    # each part may replace failed expert runs (at most 10 + its size, rollout_dataset.py)
    stride = 2 * (args.expert + args.suboptimal) // jobs + 20
    if args.seed < 0 or args.seed + jobs * stride > MAX_DATA_SEED:
        raise UserError(f"--seed {args.seed}: layout seeds must stay in [0, {MAX_DATA_SEED})")
    t0 = time.time()
    print(f"generating {args.expert} expert + {args.suboptimal} unlabeled episodes "
          f"({args.suite}, {args.arm} arm) in {jobs} process(es)...", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.parts-", dir=out.parent))
    try:
        # the expert runs among the unlabeled episodes are counted over the whole dataset,
        # then shared out, so the split never changes how many there are
        n_hidden = int(round(args.expert_fraction * args.suboptimal))
        plan = [(str(work / f"part{j}"), e, s, args.suite, args.seed + j * stride, args.arm,
                 h / s if s else 0.0, args.settle_ticks)
                for j, (e, s, h) in enumerate(zip(_shares(args.expert, jobs),
                                                  _shares(args.suboptimal, jobs),
                                                  _shares(n_hidden, jobs), strict=True))]
        if jobs == 1:
            parts = [_part(plan[0])]
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
                parts = list(pool.map(_part, plan))
        merge([Path(p) for p in parts], out, args.overwrite)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from mberil_ros.data.dataset import Dataset

    ds = Dataset(out)
    print(f"wrote {out}: {ds.num_episodes} episodes, {ds.num_frames} frames "
          f"({time.time() - t0:.0f} s)")
    return 0
