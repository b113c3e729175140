"""Real-time factor of the MuJoCo NEXTAGE reaching task (docs/task.md).

2 ms physics step, 50 Hz control (10 physics steps per tick), single process on one core.
Two numbers: the bare simulator (held position targets) and the closed loop with the
scripted expert computing every action. Prints the median of several runs.

    .venv/bin/python bench/sim_speed.py [--runs 5] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from mberil_ros.sim.demonstrators import ScriptedExpert
from mberil_ros.sim.spaces import CONTROL_DT
from mberil_ros.sim.task import ReachingTask


def sim_only(task: ReachingTask, seconds: float, seed: int) -> float:
    obs = task.reset(seed=seed)
    task.time_limit = float("inf")  # measure stepping, not episode resets
    rng = np.random.default_rng(seed)
    ticks = int(seconds / CONTROL_DT)
    start = time.perf_counter()
    for _ in range(ticks):
        obs, _, _, _ = task.step(obs[:6] + rng.normal(0.0, 0.01, 6))
    return ticks * CONTROL_DT / (time.perf_counter() - start)


def with_expert(task: ReachingTask, seconds: float, seed: int) -> float:
    expert = ScriptedExpert(seed=seed)
    sim_time, wall, ep = 0.0, 0.0, 0
    while sim_time < seconds:
        obs = task.reset(seed=seed * 1000 + ep)
        expert.reset(task.episode)
        ep += 1
        start = time.perf_counter()
        done = False
        while not done:
            obs, _, done, _ = task.step(expert.act(obs))
        wall += time.perf_counter() - start
        sim_time += task.time
    return sim_time / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated s per run")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # single core
    task = ReachingTask("train", "right", seed=0)
    sim_rtf = [sim_only(task, args.seconds, r) for r in range(args.runs)]
    task = ReachingTask("train", "right", seed=0)
    exp_rtf = [with_expert(task, args.seconds, r) for r in range(args.runs)]
    print(f"physics dt 2 ms, control 50 Hz, {args.runs} runs x {args.seconds:g} s simulated, "
          "1 core")
    print(f"sim only        real-time factor: median {statistics.median(sim_rtf):.0f}x "
          f"(min {min(sim_rtf):.0f}x, max {max(sim_rtf):.0f}x)")
    print(f"sim + expert    real-time factor: median {statistics.median(exp_rtf):.0f}x "
          f"(min {min(exp_rtf):.0f}x, max {max(exp_rtf):.0f}x)")


if __name__ == "__main__":
    main()
