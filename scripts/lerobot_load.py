"""Open a dataset with LeRobot's own LeRobotDataset and print what it sees, as JSON.

Runs in the lerobot venv (.venv-lerobot, made by scripts/check_lerobot.sh), never in .venv:
it imports lerobot and nothing of mberil_ros. scripts/check_lerobot.py compares the output
with what mberil_ros's reader reports for the same dataset.

    .venv-lerobot/bin/python scripts/lerobot_load.py DATASET OUT.json --horizon 10 --probe 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def summary(root: Path, horizon: int, probes: list[int]) -> dict:
    import lerobot
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    repo_id = f"local/{root.name}"  # with root given, LeRobot reads the folder (no hub)
    ds = LeRobotDataset(repo_id, root=root)
    fps = ds.fps
    chunked = LeRobotDataset(repo_id, root=root,
                             delta_timestamps={"action": [k / fps for k in range(horizon)]})
    episodes = ds.meta.episodes
    out = {
        "lerobot": lerobot.__version__,
        "torch": torch.__version__,
        "fps": fps,
        "frames": len(ds),
        "episodes": ds.num_episodes,
        "total_frames": ds.meta.total_frames,
        "ranges": [[int(e["dataset_from_index"]), int(e["dataset_to_index"])] for e in episodes],
        "tasks": [str(t) for t in ds.meta.tasks.index],
        "features": {k: list(v["shape"]) for k, v in ds.features.items()},
        "stats": sorted(ds.meta.stats["action"]),
        "probes": [],
    }
    for i in probes:
        item, chunk = ds[i], chunked[i]
        out["probes"].append({
            "index": i,
            "episode_index": int(item["episode_index"]),
            "frame_index": int(item["frame_index"]),
            "task": item["task"],
            "observation.state": item["observation.state"].tolist(),
            "action_chunk_shape": list(chunk["action"].shape),
            "action_chunk": chunk["action"].tolist(),
            "action_is_pad": chunk["action_is_pad"].tolist(),
        })
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", type=Path)
    p.add_argument("out", type=Path, help="JSON file to write (stdout carries LeRobot's logs)")
    p.add_argument("--horizon", type=int, default=10, help="action chunk length (frames)")
    p.add_argument("--probe", type=int, action="append", default=[],
                   help="frame index to read (repeatable)")
    args = p.parse_args()
    result = summary(args.dataset.resolve(), args.horizon, args.probe)
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
