"""Real-time control loop: sim_node and policy_node in separate processes over DDS, at 100
and 500 Hz, next to an idle rclpy timer at the same rate measured in the same run.

    .venv/bin/python bench/control_loop.py [--seconds 60] [--rates 100 500] [--checkpoint DIR]
        [--thread-priority N] [--lock-memory] [--inference-threads N]

Prints, per rate: the policy's missed ticks, loop period p50/p99, jitter p99 (|period -
1/rate|) and inference p50/p99 (from policy_node's own statistics, wall clock), and the
same period statistics of a timer that does nothing. Targets: 100 Hz with no missed tick
and p99 jitter <= 2 ms; 500 Hz with <= 1 % missed ticks. The policy is the small trained
BC-MLP of test/data (its commands at another rate than it was trained at do not matter
here: only timing is measured). --thread-priority / --lock-memory set policy_node's
parameters of the same names (SCHED_FIFO, mlockall: they need root or the matching limits)
and give the idle timer the same scheduling, so the two stay comparable. --inference-threads
sets policy_node's torch threads (default: the node's default, 1; 0: torch's).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mberil_ros.record import node_command, stop_process  # noqa: E402

IDLE = """
import os, sys, time, numpy as np, rclpy
rate, seconds, priority = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
if priority:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
rclpy.init()
node = rclpy.create_node("idle_timer")
stamps = []
node.create_timer(1.0 / rate, lambda: stamps.append(time.perf_counter()))
end = time.monotonic() + seconds
while time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.1)
p = np.diff(stamps)
jitter = np.abs(p - 1.0 / rate)
missed = int(np.maximum(np.round(p * rate) - 1, 0).sum())
print(f"IDLE {len(stamps)} {missed} {1e3 * np.percentile(p, 50):.3f} "
      f"{1e3 * np.percentile(p, 99):.3f} {1e3 * np.percentile(jitter, 99):.3f}")
"""


def run_rate(rate: float, seconds: float, checkpoint: Path, priority: int = 0,
             lock: bool = False, inference_threads: int = 1) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_DOMAIN_ID=str(60 + int(rate) % 40))
    sim = subprocess.Popen(node_command("sim_node", {"control_rate": rate, "auto_start": True,
                                                     "real_time_factor": 1.0}),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    policy = subprocess.Popen(node_command("policy_node", {
        "checkpoint": str(checkpoint), "autostart": True, "control_rate": rate,
        "diagnostics_rate": 1.0, "thread_priority": priority, "lock_memory": lock,
        "inference_threads": inference_threads}),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    idle = subprocess.Popen([sys.executable, "-c", IDLE, str(rate), str(seconds), str(priority)],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(seconds)
        idle_out = idle.communicate(timeout=seconds + 60)[0]
    finally:
        stop_process(policy)
        stop_process(sim)
    report = policy.stdout.read()
    m = re.search(r"(\d+) ticks, (\d+) commands, (\d+) missed; inference p50/p99 ([\d.]+)/"
                  r"([\d.]+) ms, period p50/p99 ([\d.]+)/([\d.]+) ms", report)
    i = re.search(r"IDLE (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)", idle_out)
    if m is None or i is None:
        raise SystemExit(f"no statistics at {rate} Hz:\n{report}\n{idle_out}")
    ticks, _, missed, inf50, inf99, p50, p99 = m.groups()
    return {"rate": f"{rate:g}", "ticks": ticks, "missed": missed,
            "missed_%": f"{100 * int(missed) / max(int(ticks) + int(missed), 1):.2f}",
            "period_p50": p50, "period_p99": p99,
            "jitter_p99": f"{abs(float(p99) - 1e3 / rate):.3f}",
            "inference_p50": inf50, "inference_p99": inf99,
            "idle_missed": i.group(2), "idle_period_p99": i.group(4),
            "idle_jitter_p99": i.group(5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0])
    parser.add_argument("--checkpoint", type=Path,
                        default=REPO / "test" / "data" / "policy_reach_mlp")
    parser.add_argument("--thread-priority", type=int, default=0,
                        help="policy_node's SCHED_FIFO priority (0: normal scheduling)")
    parser.add_argument("--lock-memory", action="store_true", help="policy_node mlockall")
    parser.add_argument("--inference-threads", type=int, default=1,
                        help="policy_node's torch threads (0: torch's default)")
    args = parser.parse_args()
    rows = [run_rate(r, args.seconds, args.checkpoint, args.thread_priority, args.lock_memory,
                     args.inference_threads) for r in args.rates]
    keys = list(rows[0])
    print("  ".join(f"{k:>15}" for k in keys))
    for row in rows:
        print("  ".join(f"{row[k]:>15}" for k in keys))
    print("(ms; policy statistics from policy_node, jitter p99 of the policy = period p99 - "
          "1/rate; the idle timer ran beside it in the same run)")


if __name__ == "__main__":
    main()
