"""`mberil convert BAG... -o DATASET`: rosbag2 (MCAP/sqlite3) and ROS 1 bags -> dataset.

Examples:
    mberil convert bags/session1 -o datasets/session1
    mberil convert demo1.mcap demo2.mcap --label expert -o datasets/lab   # no markers
    mberil convert long_session.mcap --split-gap 2.0 -o datasets/lab      # pauses cut episodes
    mberil convert both_arms_bag --arm both -o datasets/both
    mberil convert lab.mcap topics.joint_states.name=/robot/joint_states fps=25 -o datasets/lab

KEY=VALUE items among the bags set any key of config/dataset.yaml (dotted for nested keys),
as `mberil train` does for its config.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from mberil_ros.data.config import load_config
from mberil_ros.data.converter import convert
from mberil_ros.paths import config_file
from mberil_ros.sim.spaces import ARMS

SETTING = re.compile(r"^[A-Za-z_][\w.]*=")  # a config override, not a bag path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", metavar="BAG|KEY=VALUE",
                        help="rosbag2 folders or .mcap/.db3 files, or ROS 1 .bag files "
                        "(episodes are numbered across bags in the order given); KEY=VALUE "
                        "items override config keys, e.g. topics.commands.name=/my/cmd")
    parser.add_argument("-o", "--output", required=True, metavar="DATASET",
                        help="dataset folder to create (docs/dataset.md)")
    parser.add_argument("--config", metavar="YAML",
                        help="conversion config (default: the package's config/dataset.yaml)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset, once the new one is complete")
    parser.add_argument("--timestamps", choices=["receive", "header"],
                        help="override the config: sample at receive time or header.stamp")
    parser.add_argument("--fps", type=float, help="override the config's grid rate")
    parser.add_argument("--arm", choices=ARMS,
                        help="override the config's arm; a bag that drives another arm is "
                        "refused")
    parser.add_argument("--episodes", choices=["auto", "markers", "bag"],
                        help="where episodes come from: /task/episode markers, or one per bag "
                        "(auto, the default: markers when the bag has them)")
    parser.add_argument("--label", choices=["expert", "suboptimal"],
                        help="label of episodes in bags without markers (default expert)")
    parser.add_argument("--split-gap", type=float, metavar="SEC",
                        help="bags without markers: a pause in the commands longer than SEC "
                        "starts a new episode (default: one episode per bag)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _default_config() -> Path | None:
    try:
        path = config_file("dataset.yaml")
    except FileNotFoundError:
        return None
    return path if path.is_file() else None


def run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("timestamps", args.timestamps), ("fps", args.fps),
                                   ("arm", args.arm), ("episodes", args.episodes),
                                   ("label", args.label), ("split_gap", args.split_gap))
                 if v is not None}
    settings = [b for b in args.bags if SETTING.match(b) and not Path(b).exists()]
    bags = [b for b in args.bags if b not in settings]
    cfg = load_config(args.config or _default_config(), overrides, settings)
    report = convert(bags, args.output, cfg, overwrite=args.overwrite,
                     progress=False if args.no_progress else None)
    print(report.format())
    print(f"wrote {args.output}")
    return 0
