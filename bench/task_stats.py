"""Task statistics of the reaching suites: is the benchmark a fair test?

Per suite, runs every scripted demonstrator on the same ``--episodes`` sampled episodes and
prints success rates, how often the straight hand path is blocked by an obstacle, how often
the obstacle-blind ``greedy`` demonstrator fails on those blocked episodes, expert episode
lengths (50 Hz ticks) and the start-to-target distances. See docs/task.md.

    .venv/bin/python bench/task_stats.py [--episodes 100] [--jobs 2] [--seed 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from mberil_ros.sim.demo import run_episode
from mberil_ros.sim.demonstrators import DEMONSTRATORS, make_demonstrator
from mberil_ros.sim.spaces import CONTROL_DT
from mberil_ros.sim.suites import SUITES, on_straight_path
from mberil_ros.sim.task import ReachingTask


def run_chunk(suite: str, seeds: list[int]) -> list[dict]:
    """Every demonstrator on each seed's episode: outcome, length and episode geometry."""
    task = ReachingTask(suite, "right", seed=0)
    demos = {n: make_demonstrator(n, seed=0) for n in DEMONSTRATORS}
    rows = []
    for seed in seeds:
        task.reset(seed=seed)
        start = task.hand_positions()["right"]
        goal = task.goals["right"]
        row = {"suite": suite, "seed": seed, "distance": float(np.linalg.norm(goal - start)),
               "on_path": any(on_straight_path(start, goal, ob) for ob in task.obstacles)}
        for name, demo in demos.items():
            info, _ = run_episode(task, demo, seed)
            row[name] = {"success": bool(info["success"]), "collision": bool(info["collision"]),
                         "ticks": int(round(info["time"] / CONTROL_DT))}
        rows.append(row)
    return rows


def summarize(rows: list[dict]) -> str:
    lines = []
    head = (f"{'suite':18s} {'n':>4s} " + " ".join(f"{n + ' ok':>10s}" for n in DEMONSTRATORS)
            + f" {'on-path':>8s} {'greedy fail|on-path':>20s} {'expert ticks mean/median/min':>29s}"
            + f" {'min dist':>9s}")
    lines += [head, "-" * len(head)]
    for suite in SUITES:
        rs = [r for r in rows if r["suite"] == suite]
        if not rs:
            continue
        ok = {n: np.mean([r[n]["success"] for r in rs]) for n in DEMONSTRATORS}
        on = [r for r in rs if r["on_path"]]
        g_fail = np.mean([not r["greedy"]["success"] for r in on]) if on else float("nan")
        ticks = [r["expert"]["ticks"] for r in rs if r["expert"]["success"]]
        lines.append(
            f"{suite:18s} {len(rs):4d} " + " ".join(f"{ok[n]:10.2f}" for n in DEMONSTRATORS)
            + f" {len(on) / len(rs):8.2f} {g_fail:20.2f} "
            + f"{np.mean(ticks):14.0f} / {statistics.median(ticks):5.0f} / {min(ticks):4d}"
            + f" {min(r['distance'] for r in rs):9.3f}")
    lines.append("")
    lines.append("failures (collision / timeout) per demonstrator and suite:")
    for suite in SUITES:
        rs = [r for r in rows if r["suite"] == suite]
        cells = []
        for n in DEMONSTRATORS:
            col = sum(r[n]["collision"] for r in rs)
            out = sum(not r[n]["success"] and not r[n]["collision"] for r in rs)
            cells.append(f"{n} {col}/{out}")
        lines.append(f"  {suite:18s} " + ", ".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100, help="episodes per suite")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--seed", type=int, default=1000, help="first episode seed")
    parser.add_argument("--suite", action="append", choices=list(SUITES),
                        help="suite to run (repeatable; default all)")
    args = parser.parse_args()
    suites = args.suite or list(SUITES)
    seeds = list(range(args.seed, args.seed + args.episodes))
    chunk = max(1, len(seeds) // (2 * max(args.jobs, 1)))
    work = [(s, seeds[i:i + chunk]) for s in suites for i in range(0, len(seeds), chunk)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        parts = pool.map(run_chunk, *zip(*work, strict=True))
        rows = [r for part in parts for r in part]
    print(f"{args.episodes} episodes per suite, seeds {args.seed}..{seeds[-1]}, right arm, "
          f"{time.perf_counter() - t0:.0f} s on {args.jobs} processes")
    print(summarize(rows))


if __name__ == "__main__":
    main()
