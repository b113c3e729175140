"""`mberil sim-demo`: run the scripted demonstrators on each task suite and
print success rate, mean time to success and collisions per demonstrator x suite."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mberil_ros.errors import UserError
from mberil_ros.eval.table import text_table
from mberil_ros.sim.demonstrators import DEMONSTRATORS, IKDemonstrator, make_demonstrator
from mberil_ros.sim.scene import Episode
from mberil_ros.sim.spaces import ARMS
from mberil_ros.sim.suites import SUITES, suite_names
from mberil_ros.sim.task import ReachingTask


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", action="append", metavar="NAME",
                        help=f"suite to run (repeatable; default and 'all': {', '.join(SUITES)})")
    parser.add_argument("--episodes", default="5", help="episodes per suite (default 5)")
    parser.add_argument("--seed", default="0", help="base seed, a non-negative integer")
    parser.add_argument("--arm", default="right", help="right | left | both (default right)")
    parser.add_argument("--demonstrators", default=",".join(DEMONSTRATORS),
                        help="comma-separated names (default all)")
    parser.add_argument("--layouts", metavar="FILE", help="run the layouts of this YAML file "
                        "instead of sampled suites")
    parser.add_argument("--plot", metavar="PATH.png", help="save the expert's first episode")
    parser.add_argument("--urdf", metavar="FILE", help="robot description (.urdf or .xacro; "
                        "default the package's urdf/nextage.urdf.xacro)")


def _nonneg_int(value: str, name: str, minimum: int = 0) -> int:
    try:
        n = int(value)
    except ValueError:
        raise UserError(f"--{name} must be an integer, got {value!r}") from None
    if n < minimum:
        raise UserError(f"--{name} must be >= {minimum}, got {n}")
    return n


@dataclass
class Row:
    demonstrator: str
    label: str
    suite: str
    episodes: int = 0
    successes: int = 0
    collisions: int = 0
    times: list = field(default_factory=list)

    def cells(self) -> list[str]:
        t = f"{np.mean(self.times):.2f}" if self.times else "-"
        return [self.demonstrator, self.label, self.suite, str(self.episodes),
                f"{self.successes / max(self.episodes, 1):.2f}", t,
                f"{self.collisions / max(self.episodes, 1):.2f}"]


def run_episode(task: ReachingTask, demo: IKDemonstrator, seed: int,
                episode: Episode | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Run one episode closed loop; return the final info and the hand paths."""
    obs = task.reset(seed=seed, layout=episode)
    demo.reset(task.episode, seed=seed)
    paths = {s: [task.hand_positions()[s]] for s in task.obs_layout.hands}
    done, info = False, task.status()
    while not done:
        obs, _, done, info = task.step(demo.act(obs))
        for s in paths:
            paths[s].append(task.hand_positions()[s])
    return info, {s: np.asarray(p) for s, p in paths.items()}


def format_table(rows: list[Row]) -> str:
    header = ["demonstrator", "label", "suite", "episodes", "success", "t_success_s",
              "collisions/ep"]
    return text_table(header, [r.cells() for r in rows])


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    seed = _nonneg_int(args.seed, "seed")
    episodes = _nonneg_int(args.episodes, "episodes", minimum=1)
    if args.arm not in ARMS:
        raise UserError(f"--arm must be one of {', '.join(ARMS)}, got {args.arm!r}")
    names = [n.strip() for n in args.demonstrators.split(",") if n.strip()]
    for n in names:
        if n not in DEMONSTRATORS:
            raise UserError(f"unknown demonstrator {n!r} (choose from {', '.join(DEMONSTRATORS)})")
    if args.urdf and not Path(args.urdf).is_file():
        raise UserError(f"--urdf: file not found: {args.urdf}")
    if args.plot and not Path(args.plot).resolve().parent.is_dir():
        raise UserError(f"--plot: folder does not exist: {Path(args.plot).parent}")

    # jobs: (suite label, task, list of (seed, episode or None))
    jobs = []
    if args.layouts:
        from mberil_ros.sim.layouts import load_layouts

        layouts = load_layouts(args.layouts)
        for arm in ARMS:
            mine = [e for e in layouts if e.arm == arm]
            if mine:
                task = ReachingTask("train", arm, seed, urdf=args.urdf)
                jobs.append((f"layouts:{arm}", task, [(seed + i, e) for i, e in enumerate(mine)]))
    else:
        for s in suite_names(args.suite, list(SUITES)):
            task = ReachingTask(s, args.arm, seed, urdf=args.urdf)
            jobs.append((s, task, [(seed + i, None) for i in range(episodes)]))

    demos = {n: make_demonstrator(n, seed=seed, urdf=args.urdf) for n in names}
    rows: list[Row] = []
    plotted = None
    total = len(demos) * sum(len(eps) for _, _, eps in jobs)
    with tqdm(total=total, desc="episodes", unit="ep") as bar:
        for label, task, eps in jobs:
            for name, demo in demos.items():
                row = Row(name, demo.label, label)
                for ep_seed, episode in eps:
                    info, paths = run_episode(task, demo, ep_seed, episode)
                    row.episodes += 1
                    row.successes += info["success"]
                    row.collisions += info["collision"]
                    if info["success"]:
                        row.times.append(info["time"])
                    if plotted is None and name == names[0]:
                        plotted = (paths, dict(task.episode.targets), task.obstacles,
                                   f"{name} on {label} (seed {ep_seed}): "
                                   f"{'success' if info['success'] else 'failure'}")
                    bar.update()
                rows.append(row)
    print(format_table(rows))
    if args.plot and plotted is not None:
        from mberil_ros.sim.plot import plot_episode

        out = plot_episode(args.plot, *plotted[:3], title=plotted[3])
        print(f"plot: {out}")
    return 0
