"""Benchmark `mberil convert` against a plain rosbags read + deserialize loop.

Writes a synthetic MCAP bag (JointState of 15 NEXTAGE joints at 100 Hz, forward-controller
commands at 50 Hz, goal/obstacles and episode markers every 20 s), then runs, each in a fresh
subprocess so their peak memory is their own:
  plain:     AnyReader over every message + reader.deserialize()
  converter: mberil_ros.data.converter.convert() to a dataset (50 Hz grid, Parquet, stats)
and prints both rates over the bag's total message count, their ratio and peak RSS.

    .venv/bin/python bench/convert_speed.py                  # 1,000,000 JointState messages
    .venv/bin/python bench/convert_speed.py --messages 50000 # quick run
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN = """
import json, resource, sys, time
from pathlib import Path
from rosbags.highlevel import AnyReader
t0 = time.perf_counter(); n = 0
with AnyReader([Path(sys.argv[1])]) as reader:
    for conn, t, raw in reader.messages():
        reader.deserialize(raw, conn.msgtype)
        n += 1
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "messages": n,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CONVERT = """
import json, resource, sys, time
from mberil_ros.data.config import load_config
from mberil_ros.data.converter import convert
t0 = time.perf_counter()
report = convert([sys.argv[1]], sys.argv[2], load_config(None), progress=False)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "messages": report.messages, "frames": report.frames,
                  "episodes": report.episodes,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_bench_bag(path: Path, joint_state_messages: int) -> int:
    from mberil_ros.data.synthetic import MessageFactory, demo_messages, write_bag

    episode_s, gap_s, js_hz = 20.0, 1.0, 100.0
    episodes = max(1, math.ceil((joint_state_messages / js_hz - 0.5) / (episode_s + gap_s)))
    # trim the last episode's tail so the JointState count is close to the request
    stream = demo_messages(MessageFactory(), episodes=episodes, episode_s=episode_s,
                           gap_s=gap_s, js_hz=js_hz, cmd_hz=50.0, obstacles=3)
    count = {"js": 0, "all": 0}

    def limited():
        for m in stream:
            if m.topic == "/joint_states":
                if count["js"] >= joint_state_messages:
                    continue
                count["js"] += 1
            count["all"] += 1
            yield m

    write_bag(path, limited(), "mcap")
    return count["all"]


def run_child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000,
                        help="JointState messages in the synthetic bag (default 1,000,000)")
    parser.add_argument("--workdir", type=Path, help="where to write the bag (default: tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the bag and dataset")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="convert_speed-", dir=args.workdir))
    try:
        bag = work / "bench_bag"
        t0 = time.perf_counter()
        total = write_bench_bag(bag, args.messages)
        size = sum(p.stat().st_size for p in bag.iterdir()) / 1e6
        print(f"wrote {bag}: {total} messages ({args.messages} JointState), {size:.0f} MB, "
              f"in {time.perf_counter() - t0:.1f} s")

        plain = run_child(PLAIN, str(bag))
        conv = run_child(CONVERT, str(bag), str(work / "dataset"))
        plain_rate = plain["messages"] / plain["seconds"]
        conv_rate = total / conv["seconds"]
        print(f"plain read+deserialize: {plain_rate:12,.0f} msgs/s  ({plain['seconds']:.2f} s, "
              f"peak RSS {plain['rss_mb']:.0f} MB)")
        print(f"mberil convert:         {conv_rate:12,.0f} msgs/s  ({conv['seconds']:.2f} s, "
              f"peak RSS {conv['rss_mb']:.0f} MB, {conv['episodes']} episodes, "
              f"{conv['frames']} frames)")
        print(f"ratio convert/plain: {conv_rate / plain_rate:.2f}x (target >= 3x); "
              f"converter peak RSS {conv['rss_mb']:.0f} MB (target < 1024 MB)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
