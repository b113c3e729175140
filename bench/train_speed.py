"""Training throughput: transitions/s of Offline-MB-ERIL (and BC), mlp vs mamba backbones,
at several episode lengths.

    .venv/bin/python bench/train_speed.py [--device cpu|cuda] [--lengths 50 200 400]
        [--repeats 5] [--steps 2] [--bc] [--dataset PATH] [--d-model N] [--n-layers N]

Data: synthetic episodes of exactly each --length in the task's observation layout (right
arm: 39 observations / 6 joints; smooth random walks, half expert, half sub-optimal), or
--dataset (one row "data").
Transitions/s counts the real (unpadded) transitions in the batches one iteration samples per
data source (BC: one expert batch; Offline-MB-ERIL after its warm start: one rollout batch +
discriminator, policy and model batches), divided by the iteration's wall time. Sizes are
config/train.yaml's defaults (batch 16 whole episodes; --d-model / --n-layers change the
encoder size). Each number is the median of --repeats timings of --steps iterations after a
warm-up in the same process, so the backbones are compared under the same conditions (other
processes on the machine still add noise: compare medians, not single runs).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mberil_ros.algos.bc import BC, BCConfig
from mberil_ros.algos.common import NetworkConfig
from mberil_ros.algos.data import OfflineData
from mberil_ros.algos.offline_mberil import OfflineMBERIL, OfflineMBERILConfig
from mberil_ros.data.writer import DatasetWriter
from mberil_ros.models import mamba_ssm_available
from mberil_ros.sim import spaces
from mberil_ros.sim.model import INIT_RTM

EPISODES = 32
LAYOUT = spaces.observation_layout("right")


def synthetic_dataset(root: Path, length: int, seed: int = 0) -> Path:
    """EPISODES episodes of `length` steps in the task's observation layout (so the default
    network, hand features and policy_ignore included, applies): joint positions on smooth
    random walks around init_rtm, commands a step ahead, a goal and 0-3 obstacles."""
    rng = np.random.default_rng(seed)
    lay = LAYOUT
    n_joints = lay.act_dim
    writer = DatasetWriter(root / f"synthetic-{length}", overwrite=True,
                           state_names=lay.state_names,
                           action_names=[f"{j}.target" for j in lay.joints])
    init = np.array([INIT_RTM.get(j, 0.0) for j in lay.joints])
    for k in range(EPISODES):
        walk = np.cumsum(0.01 * rng.standard_normal((length + 2, n_joints)), 0)
        cmd = init + 0.3 * np.tanh(walk)
        states = np.zeros((length + 1, lay.obs_dim), np.float32)
        states[:, lay.qpos] = cmd[:-1]
        states[1:, lay.qvel] = np.diff(cmd[:-1], axis=0) / spaces.CONTROL_DT
        states[:, lay.goal] = rng.uniform([0.24, -0.5, 0.0], [0.5, -0.02, 0.18])
        slots = np.zeros((spaces.MAX_OBSTACLES, len(spaces.OBSTACLE_FIELDS)), np.float32)
        for i in range(rng.integers(0, spaces.MAX_OBSTACLES + 1)):
            slots[i, :3] = rng.uniform([0.18, -0.54, -0.08], [0.5, -0.26, 0.05])
            slots[i, 3:6] = rng.uniform(0.02, 0.035)
            slots[i, spaces.OB_PRESENT] = 1.0
        states[:, lay.obstacles] = slots.ravel()
        label = "expert" if k % 2 == 0 else "suboptimal"
        writer.add_episode({"label": label, "demonstrator": "synthetic"}, states[:-1],
                           cmd[1:-1].astype(np.float32), states[1:],
                           np.arange(length) * spaces.CONTROL_DT)
    return writer.finish({"fps": 1.0 / spaces.CONTROL_DT, "joints": list(lay.joints)})


def measure(algo, steps: int, repeats: int, transitions: float) -> tuple[float, float]:
    """Median transitions per wall second and per process CPU second (all threads; less
    sensitive to other load on a shared machine) over `repeats` timings of `steps`."""
    algo.train_step(1)  # warm-up: kernel build/load, allocator, caches
    rates, cpu_rates = [], []
    for r in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        for i in range(steps):
            algo.train_step(100 + r * steps + i)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        rates.append(transitions * steps / (time.perf_counter() - t))
        cpu_rates.append(transitions * steps / (time.process_time() - c))
    return statistics.median(rates), statistics.median(cpu_rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 200, 400])
    parser.add_argument("--backbones", nargs="+", default=["mlp", "mamba"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bc", action="store_true", help="also time BC")
    parser.add_argument("--dataset", type=Path, help="time on this dataset instead")
    parser.add_argument("--d-model", type=int, help="encoder width (default: the config's)")
    parser.add_argument("--n-layers", type=int, help="Mamba blocks (default: the config's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    root = Path(tempfile.mkdtemp(prefix="mberil-train-speed-"))
    sets = ({"data": args.dataset} if args.dataset else
            {str(n): synthetic_dataset(root, n) for n in args.lengths})
    algos = ["offline_mberil"] + (["bc"] if args.bc else [])
    size = NetworkConfig(**{k: v for k, v in (("d_model", args.d_model),
                                               ("n_layers", args.n_layers)) if v})
    print(f"network d_model {size.d_model}, {size.n_layers} Mamba layers, head_hidden "
          f"{size.head_hidden}, mlp_hidden {size.mlp_hidden}, features {size.features}")
    print(f"device {device}; torch threads {torch.get_num_threads()}; "
          f"mamba_ssm kernels: {mamba_ssm_available() and device.type == 'cuda'}")
    print(f"{'algorithm':>15} {'ep. length':>10} {'backbone':>8} {'ms/iter':>9} "
          f"{'transitions/s':>14} {'per CPU-s':>10}")
    rate: dict[tuple[str, str, str], tuple[float, float]] = {}
    for name, path in sets.items():
        for backbone in args.backbones:
            network = {"backbone": backbone}
            if args.d_model:
                network["d_model"] = args.d_model
            if args.n_layers:
                network["n_layers"] = args.n_layers
            bc_cfg = BCConfig.from_dict({"network": network})
            data = OfflineData(path, bc_cfg.data)
            mean_len = float(data.train.steps("all")) / data.train.count("all")
            per_batch = bc_cfg.batch_size * mean_len
            for algo_name in algos:
                if algo_name == "bc":
                    algo, per_iter = BC(bc_cfg, data, device, seed=0), per_batch
                else:
                    cfg = OfflineMBERILConfig.from_dict(
                        {"network": network, "bc_warmstart_steps": 0,
                         "model_warmstart_steps": 0})
                    algo = OfflineMBERIL(cfg, data, device, seed=0)
                    # rollout + discriminator (expert, unlabeled, generated) + policy + model
                    per_iter = per_batch * 5
                r, rc = rate[algo_name, name, backbone] = measure(
                    algo, args.steps, args.repeats, per_iter)
                print(f"{algo_name:>15} {name:>10} {backbone:>8} {per_iter / r * 1e3:9.1f} "
                      f"{r:14.0f} {rc:10.0f}", flush=True)
    if {"mlp", "mamba"} <= set(args.backbones):
        for algo_name in algos:
            for name in sets:
                (w1, c1), (w0, c0) = rate[algo_name, name, "mamba"], rate[algo_name, name, "mlp"]
                print(f"{algo_name} length {name}: mamba/mlp transitions/s = {w1 / w0:.2f}x "
                      f"(per CPU-s {c1 / c0:.2f}x)")


if __name__ == "__main__":
    main()
