"""Replay a suite's layouts with the obstacles changed, to see why a policy fails on them.

For each layout seed the policy runs four times (docs/learning.md, "Where the held-out
obstacle episodes fail"):

    drawn     the layout as the suite draws it
    removed   no obstacles at all
    lowered   every box's top lowered to --top (it still stands on the table; footprint and
              position unchanged; spheres untouched)
    seen      physics as drawn, but the policy's observation shows the lowered boxes: what
              the policy sees, not what it meets, is changed

Usage (held-out layouts: this is analysis of failures, not a held-out estimate):

    python scripts/obstacle_counterfactual.py runs/RUN/checkpoints/best \\
        --suite heldout_obstacles --episodes 40 --top 0.13
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from mberil_ros.eval.closed_loop import EVAL_SEED_BASE, make_controller, run_episode
from mberil_ros.sim.model import TABLE_TOP_Z
from mberil_ros.sim.observation import obstacle_features
from mberil_ros.sim.scene import Episode, Obstacle
from mberil_ros.sim.task import ReachingTask

VARIANTS = ("drawn", "removed", "lowered", "seen")


def lowered_box(ob: Obstacle, top: float) -> Obstacle:
    """The same box standing on the table with its top at min(top, its own top)."""
    if ob.type != "box" or ob.top <= top:
        return ob
    height = top - TABLE_TOP_Z
    x, y, _ = ob.position
    return Obstacle.box((x, y, TABLE_TOP_Z + height / 2), (ob.size[0], ob.size[1], height))


def lowered_layout(episode: Episode, top: float) -> Episode:
    return dataclasses.replace(episode, obstacles=tuple(lowered_box(o, top)
                                                        for o in episode.obstacles))


class SeesLowered:
    """Wraps a controller: its observation's obstacle slots are those of the lowered layout
    (built once per episode by the observation's own builder; obstacles do not move)."""

    def __init__(self, inner, task: ReachingTask, top: float) -> None:
        self.inner, self.top = inner, top
        self.slots = task.obs_layout.obstacles
        self.seen = None

    def start(self, task, seed: int) -> None:
        self.inner.start(task, seed)
        self.seen = obstacle_features(lowered_layout(task.episode, self.top).obstacles)

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.array(obs, dtype=float)
        obs[self.slots] = self.seen
        return self.inner.act(obs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--suite", default="heldout_obstacles")
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--seed", type=int, default=0, help="layout seeds 1000000 + SEED + i")
    p.add_argument("--top", type=float, default=0.13,
                   help="lowered box top (m; default 0.13, the tallest in train)")
    args = p.parse_args()
    task = ReachingTask(args.suite)
    policy = make_controller(args.checkpoint, task)
    totals = dict.fromkeys(VARIANTS, 0)
    for i in range(args.episodes):
        seed = EVAL_SEED_BASE + args.seed + i
        runs = {"drawn": run_episode(task, policy, seed)}
        drawn = task.episode
        runs |= {
            "removed": run_episode(task, policy, seed,
                                   layout=dataclasses.replace(drawn, obstacles=())),
            "lowered": run_episode(task, policy, seed, layout=lowered_layout(drawn, args.top)),
            "seen": run_episode(task, SeesLowered(policy, task, args.top), seed),
        }
        cells = []
        for name, r in runs.items():
            totals[name] += r.success
            mark = "ok" if r.success else ("collision" if r.collision else "timeout")
            cells.append(f"{name} {mark} {r.final_distance:.3f}")
        print(f"seed {seed}: " + " | ".join(cells), flush=True)
    print("successes of", args.episodes, ":",
          ", ".join(f"{k} {v}" for k, v in totals.items()))


if __name__ == "__main__":
    main()
