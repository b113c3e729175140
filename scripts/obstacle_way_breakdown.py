"""Success split by how near the nearest obstacle stands to the hand's straight way.

Reads the JSON of `mberil eval ... --json OUT.json`, rebuilds each episode's layout from its
seed, and bins the episodes by the distance from the straight segment between the start
hand and the target to the nearest obstacle. The scripted expert plans around an obstacle
within 7.5 cm of that segment, so the first bin holds the layouts where an obstacle blocks
the way and the others those where nothing does (docs/learning.md, "Obstacle slots gated by
the hand's way and the arm").

Usage (held-out layouts: this is analysis of failures, not a held-out estimate):

    python scripts/obstacle_way_breakdown.py eval.json [more.json ...] \\
        --suite heldout_obstacles --bins 0.075 0.15
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mberil_ros.sim.scene import Obstacle, segment_obstacle_distance
from mberil_ros.sim.task import ReachingTask

_SAMPLES = 200  # points on the start-target segment: < 3 mm apart on the task's reaches


def nearest_obstacle_to_way(task: ReachingTask, seed: int, side: str = "right") -> float:
    """Metres from the straight start-hand -> target segment of layout ``seed`` to its
    nearest obstacle's box (a sphere as its bounding box); inf without obstacles."""
    task.reset(seed=seed)
    hand = task.hand_positions()[side]
    target = np.asarray(task.episode.targets[side], dtype=float)
    return min((segment_obstacle_distance(hand, target, Obstacle.box(o.position, o.size),
                                          n=_SAMPLES) for o in task.episode.obstacles),
               default=float("inf"))


def breakdown(episodes: list[dict], distances: dict[int, float], bins: list[float]
              ) -> list[tuple[str, int, int]]:
    """(label, successes, episodes) per distance bin: below b0 (a segment through the box
    has a negative distance), [b0, b1), ..., b_last and beyond."""
    inf = float("inf")
    edges = [-inf, *bins, inf]
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        # the last bin also takes inf: a layout without obstacles
        inside = [e for e in episodes
                  if lo <= distances[e["seed"]] < hi or (hi == inf == distances[e["seed"]])]
        if lo == -inf:
            label = f"< {100 * hi:g} cm"
        elif hi == inf:
            label = f">= {100 * lo:g} cm"
        else:
            label = f"{100 * lo:g}-{100 * hi:g} cm"
        rows.append((label, sum(bool(e["success"]) for e in inside), len(inside)))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+", type=Path, help="JSON files of mberil eval --json")
    p.add_argument("--suite", default="heldout_obstacles", help="the suite to break down")
    p.add_argument("--arm", default=None, choices=("right", "left"),
                   help="the arm the evaluation ran: read from the JSON; needed only for "
                        "files written before it was recorded (default there: right)")
    p.add_argument("--bins", type=float, nargs="+", default=[0.075, 0.15],
                   help="bin edges in metres (default: 0.075 0.15)")
    args = p.parse_args(argv)
    if sorted(args.bins) != args.bins or args.bins[0] <= 0:
        print(f"error: --bins must be increasing and positive, got {args.bins}", file=sys.stderr)
        return 2
    tasks: dict[str, ReachingTask] = {}
    distances: dict[str, dict[int, float]] = {}  # per arm, per seed
    for path in args.results:
        try:
            report = json.loads(path.read_text())
            results = [r for r in report["results"] if r["suite"] == args.suite]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"error: {path}: not a JSON of mberil eval --json ({exc})", file=sys.stderr)
            return 2
        if "layouts" in report:
            print(f"error: {path}: evaluated on user layouts ({report['layouts']}), not on a "
                  "suite's seeds", file=sys.stderr)
            return 2
        if not results:
            print(f"error: {path}: no results for suite {args.suite!r}", file=sys.stderr)
            return 2
        arm = report.get("arm", args.arm or "right")
        if arm not in ("right", "left") or (args.arm and arm != args.arm):
            print(f"error: {path}: evaluated with --arm {arm}; this breakdown needs "
                  f"{args.arm or 'right or left'}", file=sys.stderr)
            return 2
        if arm not in tasks:
            tasks[arm] = ReachingTask(args.suite, arm)
        task = tasks[arm]
        known = distances.setdefault(arm, {})
        for r in results:
            for e in r["episodes"]:
                if e["seed"] not in known:
                    known[e["seed"]] = nearest_obstacle_to_way(task, e["seed"], arm)
            cells = [f"{label}: {ok}/{n}" for label, ok, n in
                     breakdown(r["episodes"], known, args.bins)]
            print(f"{path.name} [{r['controller']}] {args.suite}: " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
