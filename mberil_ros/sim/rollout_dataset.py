"""A demonstration dataset straight from the in-process simulator (tests, demos).

Runs ReachingTask with the scripted demonstrators and writes the docs/dataset.md layout with
the same feature names and episode meta keys as ``mberil convert`` of a recorded bag, without
ROS or bags: frame i = (observation at tick i, command at tick i, observation at tick i+1).
About 0.1 s per episode (the demonstrators reach at NEXTAGE speeds: 100-300 ticks).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mberil_ros import __version__
from mberil_ros.data.config import load_config
from mberil_ros.data.writer import DatasetWriter
from mberil_ros.sim import spaces
from mberil_ros.sim.demonstrators import make_demonstrator
from mberil_ros.sim.labels import EXPERT, SUBOPTIMAL_DEMONSTRATORS
from mberil_ros.sim.task import ReachingTask

SUBOPTIMAL = SUBOPTIMAL_DEMONSTRATORS


def unlabeled_plan(suboptimal_episodes: int, expert_fraction: float,
                   suboptimal: Sequence[str] = SUBOPTIMAL) -> list[str]:
    """Demonstrators of the ``suboptimal_episodes`` unlabeled episodes: round(fraction * n)
    expert runs spread evenly among sub-optimal demonstrators cycled from ``suboptimal``."""
    if not 0.0 <= expert_fraction <= 1.0:
        raise ValueError(f"expert_fraction must be in [0, 1], got {expert_fraction}")
    n_expert = int(round(expert_fraction * suboptimal_episodes))
    if n_expert < suboptimal_episodes and not suboptimal:
        raise ValueError("no sub-optimal demonstrators to cycle")
    # Bresenham-style spread: the expert runs do not cluster at one end of the dataset.
    marks = [(i + 1) * n_expert // max(suboptimal_episodes, 1) - i * n_expert
             // max(suboptimal_episodes, 1) for i in range(suboptimal_episodes)]
    out, k = [], 0
    for m in marks:
        if m:
            out.append(EXPERT)
        else:
            out.append(suboptimal[k % len(suboptimal)])
            k += 1
    return out


def generate_dataset(out: str | Path, expert_episodes: int, suboptimal_episodes: int,
                     suite: str = "train", seed: int = 0, *, arm: str = "right",
                     suboptimal: Sequence[str] = SUBOPTIMAL,
                     expert_in_unlabeled: int = 0, expert_fraction: float = 0.0,
                     settle_steps: int = spaces.SETTLE_TICKS, overwrite: bool = True) -> Path:
    """Write ``expert_episodes`` expert episodes (label "expert"), ``suboptimal_episodes``
    unlabeled ones (label "suboptimal") and ``expert_in_unlabeled`` more expert episodes
    hidden among the unlabeled ones (label "suboptimal", demonstrator "expert").

    ``expert_fraction`` of the ``suboptimal_episodes`` unlabeled episodes (rounded) are expert
    runs too (demonstrator "expert"), the rest cycle through ``suboptimal``: a known share of
    positives in the unlabeled set for PU learning (its frame-weighted value is what
    algos.data computes from the ``demonstrator`` metadata).

    A successful episode goes on for ``settle_steps`` ticks after reaching the target (the
    hand coming to rest; see _rollout).

    Labelling rule: every episode run by the expert (labelled or hidden) must succeed; one
    that collides or times out is dropped and replaced by a run on the next layout seed, so
    no expert episode of the dataset failed. Sub-optimal episodes are kept whatever their
    outcome. Layout seeds are consecutive from ``seed`` (in meta "seed")."""
    for name, n in (("expert_episodes", expert_episodes),
                    ("suboptimal_episodes", suboptimal_episodes),
                    ("expert_in_unlabeled", expert_in_unlabeled)):
        if n < 0:
            raise ValueError(f"{name} must be >= 0, got {n}")
    if expert_episodes == 0:
        raise ValueError("expert_episodes must be >= 1")
    cfg = load_config(None, {"arm": arm, "max_obstacles": spaces.MAX_OBSTACLES})
    task = ReachingTask(suite=suite, arm=arm, seed=seed)
    plan = [("expert", EXPERT)] * expert_episodes
    plan += [("suboptimal", n) for n in unlabeled_plan(suboptimal_episodes, expert_fraction,
                                                      suboptimal)]
    plan += [("suboptimal", EXPERT)] * expert_in_unlabeled
    # A failing expert is rare (a few %); this bound only stops a broken set-up.
    max_drops = 10 + len(plan)
    writer = DatasetWriter(out, overwrite=overwrite, vectors=cfg.vectors(),
                           task=cfg.task_text())
    demos = {}
    next_seed, drops = seed, 0
    try:
        for k, (label, name) in enumerate(plan):
            while True:
                ep_seed, next_seed = next_seed, next_seed + 1
                demo = demos.setdefault(name, make_demonstrator(name, seed=ep_seed))
                obs, acts, info = _rollout(task, demo, ep_seed, settle_steps)
                if name != EXPERT or info["success"]:
                    break
                drops += 1
                if drops > max_drops:
                    raise RuntimeError(f"suite {suite}: the expert failed {drops} episodes")
            states = np.asarray(obs, dtype=np.float32)
            n = len(acts)
            meta = {
                "source_episode": k, "label": label, "demonstrator": name, "suite": suite,
                "seed": ep_seed, "success": bool(info["success"]),
                "start_time_ns": 0, "end_time_ns": int(round(n * spaces.CONTROL_DT * 1e9)),
                "task_params": json.dumps({
                    "collision": bool(info["collision"]),
                    "timeout": not (info["success"] or info["collision"])}),
                "source_bag": -1, "dropped_frames": 0, "duration_s": n * spaces.CONTROL_DT,
                "goal": states[0, task.obs_layout.goal].tolist(),
                "obstacles": states[0, task.obs_layout.obstacles].tolist(),
            }
            writer.add_episode(meta, states[:-1], np.asarray(acts, np.float32), states[1:],
                               np.arange(n) * spaces.CONTROL_DT)
        return writer.finish({
            "fps": cfg.fps, "robot_type": "nextage", "arm": cfg.arm, "joints": cfg.joints,
            "timestamps": "sim", "sources": [],
            "converter": {"name": "mberil_ros.sim.rollout_dataset", "version": __version__},
            "config": cfg.to_dict(),
        })
    except BaseException:
        writer.abort()
        raise


def _rollout(task: ReachingTask, demo, ep_seed: int, settle_steps: int = 0
             ) -> tuple[list, list, dict]:
    """One closed-loop episode: observations (one more than actions), actions, final info.
    After a success the demonstrator keeps control for ``settle_steps`` more ticks: an episode
    that stopped at the first touch of the 2 cm ball would show the hand still moving and
    never how it comes to rest, so a cloned policy would sail past the target."""
    obs = [task.reset(seed=ep_seed)]
    demo.reset(task.episode, seed=ep_seed)
    acts, done, info = [], False, task.status()
    while not done:
        a = demo.act(obs[-1])
        o, _, done, info = task.step(a)
        acts.append(a)
        obs.append(o)
    for _ in range(settle_steps if info["success"] else 0):
        a = demo.act(obs[-1])
        o, _, _, after = task.step(a)
        if after["collision"]:
            break
        acts.append(a)
        obs.append(o)
    return obs, acts, info
