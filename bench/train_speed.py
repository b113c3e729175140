"""Training throughput: transitions/s of BC and Offline-MB-ERIL, mlp vs mamba backbones.

    .venv/bin/python bench/train_speed.py [--device cpu|cuda] [--repeats 5] [--steps 10]

Transitions/s counts the real (unpadded) transitions in the batches one iteration samples
per data source (BC: one expert batch; Offline-MB-ERIL after its warm start: one rollout
batch + discriminator, policy and model batches), divided by the iteration's wall time.
Sizes are config/train.yaml's defaults (d_model 128, 4 layers, batch 16 whole episodes).
Each number is the median of --repeats timings of --steps iterations, measured after a
warm-up in the same process, so the backbones are compared under the same conditions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mberil_ros.algos.bc import BC, BCConfig
from mberil_ros.algos.data import OfflineData
from mberil_ros.algos.offline_mberil import OfflineMBERIL, OfflineMBERILConfig
from mberil_ros.models import mamba_ssm_available


def measure(algo, steps: int, repeats: int, transitions: float) -> tuple[float, float]:
    for i in range(3):  # warm-up: kernel compile, allocator, caches
        algo.train_step(i + 1)
    times = []
    for r in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        for i in range(steps):
            algo.train_step(100 + r * steps + i)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) / steps)
    per_step = statistics.median(times)
    return per_step, transitions / per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=40, help="expert episodes generated")
    parser.add_argument("--dataset", type=Path,
                        help="use this dataset instead of generating one (no MuJoCo needed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dataset = args.dataset
    if dataset is None:
        from mberil_ros.sim.rollout_dataset import generate_dataset

        root = Path(tempfile.mkdtemp(prefix="mberil-train-speed-"))
        dataset = generate_dataset(root / "demos", args.episodes, args.episodes // 2, seed=0,
                                   expert_in_unlabeled=args.episodes // 8)
    print(f"device {device}; torch threads {torch.get_num_threads()}; "
          f"mamba_ssm kernels: {mamba_ssm_available() and device.type == 'cuda'}")
    print(f"{'algorithm':>15} {'backbone':>8} {'ms/iter':>9} {'transitions/s':>14}")
    results = {}
    for backbone in ("mlp", "mamba"):
        network = {"backbone": backbone}
        bc_cfg = BCConfig.from_dict({"network": network})
        data = OfflineData(dataset, bc_cfg.data)
        mean_len = float(data.train.steps("expert")) / max(data.train.count("expert"), 1)
        per_batch = bc_cfg.batch_size * mean_len
        bc = BC(bc_cfg, data, device, seed=0)
        results["bc", backbone] = measure(bc, args.steps, args.repeats, per_batch)
        mb_cfg = OfflineMBERILConfig.from_dict({"network": network, "bc_warmstart_steps": 0,
                                                "model_warmstart_steps": 0})
        mb = OfflineMBERIL(mb_cfg, data, device, seed=0)
        # rollout + discriminator (expert, unlabeled, generated) + policy + model batches
        per_iter = per_batch * 5
        results["offline_mberil", backbone] = measure(mb, args.steps, args.repeats, per_iter)
        for algo in ("bc", "offline_mberil"):
            ms, rate = results[algo, backbone]
            print(f"{algo:>15} {backbone:>8} {ms * 1e3:9.1f} {rate:14.0f}", flush=True)
    for algo in ("bc", "offline_mberil"):
        ratio = results[algo, "mamba"][0] / results[algo, "mlp"][0]
        print(f"{algo}: mamba iteration takes {ratio:.2f}x the mlp one")


if __name__ == "__main__":
    main()
