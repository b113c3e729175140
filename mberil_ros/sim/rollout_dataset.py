"""A demonstration dataset straight from the in-process simulator (tests, demos).

Runs ReachingTask with the scripted demonstrators and writes the DESIGN.md §5 layout with
the same feature names and episode meta keys as ``mberil convert`` of a recorded bag, without
ROS or bags: frame i = (observation at tick i, command at tick i, observation at tick i+1).
About 10 ms per episode.
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
from mberil_ros.sim.labels import SUBOPTIMAL_DEMONSTRATORS
from mberil_ros.sim.task import ReachingTask

SUBOPTIMAL = SUBOPTIMAL_DEMONSTRATORS


def generate_dataset(out: str | Path, expert_episodes: int, suboptimal_episodes: int,
                     suite: str = "train", seed: int = 0, *, arm: str = "right",
                     suboptimal: Sequence[str] = SUBOPTIMAL,
                     expert_in_unlabeled: int = 0, overwrite: bool = True) -> Path:
    """Write ``expert_episodes`` expert episodes (label "expert"), ``suboptimal_episodes``
    sub-optimal ones (label "suboptimal", demonstrators cycled from ``suboptimal``) and
    ``expert_in_unlabeled`` expert episodes hidden among the sub-optimal ones (label
    "suboptimal", demonstrator "expert": a known PU mixing ratio). Episode k uses layout
    seed ``seed + k``."""
    for name, n in (("expert_episodes", expert_episodes),
                    ("suboptimal_episodes", suboptimal_episodes),
                    ("expert_in_unlabeled", expert_in_unlabeled)):
        if n < 0:
            raise ValueError(f"{name} must be >= 0, got {n}")
    if expert_episodes == 0:
        raise ValueError("expert_episodes must be >= 1")
    cfg = load_config(None, {"arm": arm, "max_obstacles": spaces.MAX_OBSTACLES})
    task = ReachingTask(suite=suite, arm=arm, seed=seed)
    plan = [("expert", "expert")] * expert_episodes
    plan += [("suboptimal", suboptimal[i % len(suboptimal)]) for i in range(suboptimal_episodes)]
    plan += [("suboptimal", "expert")] * expert_in_unlabeled
    writer = DatasetWriter(out, overwrite=overwrite, state_names=cfg.state_names(),
                           action_names=cfg.action_names())
    demos = {}
    try:
        for k, (label, name) in enumerate(plan):
            ep_seed = seed + k
            demo = demos.setdefault(name, make_demonstrator(name, seed=ep_seed))
            obs = [task.reset(seed=ep_seed)]
            demo.reset(task.episode, seed=ep_seed)
            acts, done, info = [], False, task.status()
            while not done:
                a = demo.act(obs[-1])
                o, _, done, info = task.step(a)
                acts.append(a)
                obs.append(o)
            states = np.asarray(obs, dtype=np.float32)
            n = len(acts)
            meta = {
                "source_episode": k, "label": label, "demonstrator": name, "suite": suite,
                "seed": ep_seed, "success": bool(info["success"]),
                "start_time_ns": 0, "end_time_ns": int(round(n * spaces.CONTROL_DT * 1e9)),
                "task_params": json.dumps({"collision": bool(info["collision"])}),
                "source_bag": -1, "dropped_frames": 0, "duration_s": n * spaces.CONTROL_DT,
                "goal": states[0, task.layout.goal].tolist(),
                "obstacles": states[0, task.layout.obstacles].tolist(),
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
