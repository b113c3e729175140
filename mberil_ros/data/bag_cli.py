"""`mberil bag reindex BAG`: repair a rosbag2 folder whose recording did not end normally.

Like `ros2 bag reindex`, it rebuilds metadata.yaml from the storage files; unlike it, it also
makes each MCAP file that lost its footer complete again (its messages up to the last
complete chunk, in a new file of the same name; the damaged original is kept as FILE.orig)
and lets SQLite replay a journal left open, so rosbags and every `ros2 bag` verb read the
result. `mberil convert` does the same in a temporary copy without touching the bag.

    mberil bag reindex demos/run1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mberil_ros.data.bag_recovery import reindex


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bag_command", metavar="ACTION", required=True)
    re = sub.add_parser("reindex", help="recover an interrupted recording in place: complete "
                        "MCAP files, replayed sqlite3 journals, a rebuilt metadata.yaml",
                        description=__doc__.split("\n\n")[1])
    re.add_argument("bag", type=Path, metavar="BAG", help="rosbag2 folder")


def run(args: argparse.Namespace) -> int:
    recovery = reindex(args.bag)
    if recovery is None:
        print(f"{args.bag}: metadata.yaml and every storage file are complete; nothing to do")
        return 0
    print("\n".join(recovery.lines()))
    print(f"wrote {args.bag / 'metadata.yaml'}")
    return 0
