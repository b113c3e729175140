"""Does LeRobot itself (lerobot 0.4.4, in its own venv) read a dataset as mberil_ros does?

Runs in .venv. Opens DATASET (default: `mberil convert` of a bag just made by `mberil record`)
with mberil_ros's reader, runs scripts/lerobot_load.py with the lerobot venv's Python, and
compares frame and episode counts, fps, per-episode index ranges, tasks, feature shapes, and
at probe frames the state and the action chunk that `delta_timestamps` returns (values,
shape, padding past the episode's end). Exit 1 and one line per difference when they differ.

    .venv/bin/python scripts/check_lerobot.py [DATASET] [--python .venv-lerobot/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mberil_ros.data.dataset import Dataset

ROOT = Path(__file__).resolve().parents[1]
LEROBOT_PYTHON = Path(os.environ.get("MBERIL_LEROBOT_PYTHON",
                                    ROOT / ".venv-lerobot" / "bin" / "python"))
LOADER = Path(__file__).with_name("lerobot_load.py")
# variables of .venv's ROS wheels that must not reach another interpreter (DESIGN, ROS wheels)
ROS_WHEEL_VARS = ("_ROS_WHEELS_BOOTSTRAP_COMPLETE", "LD_LIBRARY_PATH", "PYTHONPATH")


def lerobot_missing(python: Path = LEROBOT_PYTHON) -> str | None:
    """Why LeRobot cannot be run from ``python`` (None: it can)."""
    if not python.is_file():
        return f"{python} does not exist (make it with scripts/check_lerobot.sh)"
    code = "import lerobot.datasets.lerobot_dataset"
    run = subprocess.run([str(python), "-c", code], env=_child_env(Path(tempfile.gettempdir())),
                         capture_output=True, text=True)
    if run.returncode:
        return f"{python} cannot import lerobot: {run.stderr.strip().splitlines()[-1:]}"
    return None


def _child_env(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ROS_WHEEL_VARS}
    # no hub access, and the datasets cache LeRobot fills goes to scratch, not ~/.cache
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(scratch / "hf"))
    return env


def probes(ds: Dataset, episodes: int = 3) -> list[int]:
    """Frames to compare: first, middle and the last two of the first episodes (a chunk
    from the last ones runs past the episode's end, so LeRobot pads it)."""
    out: list[int] = []
    for e in ds.episodes[:episodes]:
        lo, hi = e["dataset_from_index"], e["dataset_to_index"]
        out += [lo, (lo + hi) // 2, max(hi - 2, lo), hi - 1]
    return sorted(set(out))


def expected(ds: Dataset, horizon: int, at: list[int]) -> dict[str, Any]:
    """What LeRobot should report, from mberil_ros's reader and LeRobot's documented rules:
    a chunk holds the next ``horizon`` actions of the frame's episode, repeating the last
    one past the end and marking those rows as padding."""
    f = ds.frames()
    action = f["action"]
    if action.shape[1] == 1:  # LeRobot reads a shape-[1] feature as a scalar
        action = action[:, 0]
    out: dict[str, Any] = {
        "fps": ds.fps, "frames": len(f["action"]), "episodes": ds.num_episodes,
        "total_frames": ds.num_frames,
        "ranges": [[e["dataset_from_index"], e["dataset_to_index"]] for e in ds.episodes],
        "tasks": ds.tasks,
        "features": {k: v["shape"] for k, v in ds.info["features"].items()},
        "probes": [],
    }
    for i in at:
        e = ds.episodes[int(f["episode_index"][i])]
        lo, hi = e["dataset_from_index"], e["dataset_to_index"]
        rows = np.arange(i, i + horizon)
        out["probes"].append({
            "index": i, "episode_index": int(f["episode_index"][i]),
            "frame_index": int(f["frame_index"][i]),
            "task": ds.tasks[int(f["task_index"][i])],
            "observation.state": f["observation.state"][i].tolist(),
            "action_chunk_shape": [horizon, *action.shape[1:]],
            "action_chunk": action[np.clip(rows, lo, hi - 1)].tolist(),
            "action_is_pad": (rows >= hi).tolist(),
        })
    return out


def load_with_lerobot(dataset: Path, horizon: int, at: list[int],
                      python: Path = LEROBOT_PYTHON) -> dict[str, Any]:
    """scripts/lerobot_load.py's report on ``dataset``."""
    with tempfile.TemporaryDirectory(prefix="mberil-lerobot-") as scratch:
        out = Path(scratch) / "summary.json"
        cmd = [str(python), str(LOADER), str(dataset), str(out), "--horizon", str(horizon)]
        cmd += [a for i in at for a in ("--probe", str(i))]
        run = subprocess.run(cmd, env=_child_env(Path(scratch)), capture_output=True, text=True)
        if run.returncode:
            raise RuntimeError(f"LeRobot could not load {dataset}:\n{run.stderr[-4000:]}")
        return json.loads(out.read_text())


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """One line per difference."""
    diffs = []
    for key in ("frames", "episodes", "total_frames", "ranges", "tasks", "features"):
        if ours[key] != theirs[key]:
            diffs.append(f"{key}: mberil_ros {ours[key]}, LeRobot {theirs[key]}")
    if float(ours["fps"]) != float(theirs["fps"]):
        diffs.append(f"fps: mberil_ros {ours['fps']}, LeRobot {theirs['fps']}")
    for a, b in zip(ours["probes"], theirs["probes"], strict=True):
        for key, want in a.items():
            got = b[key]
            same = (np.array_equal(np.asarray(want), np.asarray(got))
                    if isinstance(want, list) else want == got)
            if not same:
                diffs.append(f"frame {a['index']}: {key}: mberil_ros {want}, LeRobot {got}")
    return diffs


def fresh_dataset(work: Path, source: str = "record") -> Path:
    """`mberil convert` of a new bag: recorded by `mberil record` (sim, demonstrator and
    recorder nodes over DDS: 2 expert + 1 sub-optimal episodes) or, with source
    "synthetic", written by rosbags from made-up messages (no ROS needed)."""
    from mberil_ros.cli import main

    bag = work / "bag"
    if source == "record":
        # keep the nodes' DDS traffic on this machine, away from other ROS graphs
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
        if main(["record", "-o", str(bag), "--episodes", "2", "--suboptimal", "1",
                 "--seed", "7", "--log-dir", str(work / "logs")]) != 0:
            raise RuntimeError(f"mberil record failed (logs: {work / 'logs'})")
    else:
        from mberil_ros.data.synthetic import MessageFactory, demo_messages, write_bag

        write_bag(bag, demo_messages(MessageFactory(), episodes=3, jitter_s=0.002), "mcap")
    if main(["convert", str(bag), "-o", str(work / "dataset"), "--no-progress"]) != 0:
        raise RuntimeError("mberil convert failed")
    return work / "dataset"


def check(dataset: Path, horizon: int = 10, python: Path = LEROBOT_PYTHON
          ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(mberil_ros's numbers, LeRobot's, differences) for ``dataset``."""
    ds = Dataset(dataset)
    at = probes(ds)
    ours = expected(ds, horizon, at)
    theirs = load_with_lerobot(dataset, horizon, at, python)
    return ours, theirs, compare(ours, theirs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", nargs="?", type=Path,
                   help="dataset folder (default: convert a new bag in a temporary folder)")
    p.add_argument("--python", type=Path, default=LEROBOT_PYTHON,
                   help=f"the lerobot venv's interpreter (default {LEROBOT_PYTHON})")
    p.add_argument("--horizon", type=int, default=10, help="action chunk length in frames")
    p.add_argument("--bag", choices=("record", "synthetic"), default="record",
                   help="without DATASET: record a bag with `mberil record` (default; needs "
                        "rclpy) or write a synthetic one, then `mberil convert` it")
    args = p.parse_args()
    missing = lerobot_missing(args.python)
    if missing:
        print(f"check_lerobot: {missing}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mberil-check-lerobot-") as work:
        dataset = args.dataset or fresh_dataset(Path(work), args.bag)
        ours, theirs, diffs = check(dataset, args.horizon, args.python)
    print(f"lerobot {theirs['lerobot']} (torch {theirs['torch']}) read {dataset}:")
    print(f"  frames {theirs['frames']} (mberil_ros {ours['frames']}), episodes "
          f"{theirs['episodes']} ({ours['episodes']}), fps {theirs['fps']} ({ours['fps']})")
    print(f"  tasks {theirs['tasks']}; action chunk {theirs['probes'][0]['action_chunk_shape']} "
          f"at {len(theirs['probes'])} probe frames; stats keys {theirs['stats']}")
    for line in diffs:
        print(f"  DIFFERS {line}")
    print("check_lerobot: " + ("differences found" if diffs else "LeRobot reads it as we do"))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
