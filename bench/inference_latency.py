"""Per-tick inference latency of PolicyRuntime.step, by torch thread count, on an idle machine
and with busy processes beside it (what a robot PC running a simulator or a driver has).

    .venv/bin/python bench/inference_latency.py [--checkpoint DIR] [--threads 1 0]
        [--busy 0 1] [--ticks 1500] [--repeats 5]

Each repeat is a fresh process (torch's thread pool is set once per process) that steps the
policy through 3 episodes of ticks/3 steps on a fixed observation after a warm-up, and
prints p50 / p99 / max in ms. The table gives the medians over repeats, per setting, and the
ratio of each p99 to the p99 of the first --threads value measured in the same run.
--threads 0 is torch's default (one thread per core). The default checkpoint is the small
BC-MLP of test/data; pass a Mamba run's checkpoint to time the recurrent step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = """
import sys, time, numpy as np, torch
sys.path.insert(0, sys.argv[4])
from mberil_ros.runtime import PolicyRuntime
threads, ticks = int(sys.argv[2]), int(sys.argv[3])
if threads:
    torch.set_num_threads(threads)
rt = PolicyRuntime.load(sys.argv[1])
obs = (np.random.default_rng(0).standard_normal(rt.codec.obs_dim) * 0.01).astype(np.float32)
rt.reset(obs)
for _ in range(50):
    rt.step(obs)
times = []
for _ in range(3):
    rt.reset(obs)
    for _ in range(ticks // 3):
        t0 = time.perf_counter()
        rt.step(obs)
        times.append(time.perf_counter() - t0)
t = np.asarray(times) * 1e3
print("LAT", torch.get_num_threads(), *(f"{v:.3f}" for v in np.percentile(t, [50, 99, 100])))
"""

BUSY = "while True: pass"


def measure(checkpoint: Path, threads: int, busy: int, ticks: int) -> tuple[int, list[float]]:
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    try:
        out = subprocess.run([sys.executable, "-c", WORKER, str(checkpoint), str(threads),
                              str(ticks), str(REPO)], capture_output=True, text=True,
                             check=False, env=dict(os.environ, OMP_NUM_THREADS=""))
    finally:
        for s in spinners:
            s.kill()
            s.wait()
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("LAT")), None)
    if line is None:
        raise SystemExit(f"worker failed:\n{out.stderr[-2000:]}")
    fields = line.split()
    return int(fields[1]), [float(v) for v in fields[2:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path,
                        default=REPO / "test" / "data" / "policy_reach_mlp")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 0],
                        help="torch threads to compare (0: torch's default)")
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1],
                        help="numbers of busy-looping processes beside the policy")
    parser.add_argument("--ticks", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.checkpoint}, {os.cpu_count()} cores, {args.repeats} repeats of "
          f"{args.ticks} ticks; medians over repeats, ms")
    print(f"{'busy':>5} {'threads':>8} {'p50':>8} {'p99':>8} {'max':>8} {'p99 ratio':>10}")
    for busy in args.busy:
        reference = None
        for threads in args.threads:
            runs = [measure(args.checkpoint, threads, busy, args.ticks)
                    for _ in range(args.repeats)]
            used = runs[0][0]
            p50, p99, worst = (statistics.median(r[1][i] for r in runs) for i in range(3))
            reference = reference or p99
            print(f"{busy:>5} {used:>8} {p50:>8.2f} {p99:>8.2f} {worst:>8.2f} "
                  f"{p99 / reference:>9.2f}x")


if __name__ == "__main__":
    main()
