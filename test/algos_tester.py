"""Shared checks every algorithm must pass (d3rlpy's algos tester style): a few finite train
steps, a bit-exact resume from module/optimizer state_dicts + state(), and an exported
policy that survives a state_dict round trip."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path

import torch

from mberil_ros.algos.data import DataConfig, OfflineData
from mberil_ros.sim.rollout_dataset import generate_dataset
from mberil_ros.sim.spaces import RIGHT

TINY_NET = {"d_model": 16, "n_layers": 1, "context": 8, "d_state": 4, "head_hidden": 32,
            "mlp_hidden": 32}
# `mberil train` overrides for a run of a few seconds (any algorithm), and Offline-MB-ERIL's
# warm starts and rollouts cut down to match
TINY_RUN = [
    "algo.network.d_model=16", "algo.network.n_layers=1", "algo.network.head_hidden=16",
    "algo.batch_size=4", "progress=false", "num_threads=1",
]
MBERIL_TINY = [
    "algo.bc_warmstart_steps=3", "algo.model_warmstart_steps=3", "algo.rollout_batch=4",
    "algo.fifo_size=32", "algo.ensemble_size=2", "algo.horizon=3", "algo.data.max_seq_len=32",
]


def tiny_dataset(root: Path, expert: int = 8, suboptimal: int = 8, **kw) -> Path:
    return generate_dataset(root / "ds", expert, suboptimal, seed=0, **kw)


def bc_run(out: Path, name: str, dataset: Path, steps: int, *overrides: str,
           net: dict | None = None) -> Path:
    """A BC run of ``steps`` steps through the real runner (one evaluation and checkpoint at
    the end); ``net``: algo.network settings. Returns the run folder."""
    from mberil_ros.algos.runner import TrainingRun
    from mberil_ros.algos.train_config import load_train_config

    cfg = load_train_config(None, [
        "algorithm=bc", f"dataset={dataset}", f"output_dir={out}", f"name={name}",
        f"steps={steps}", f"eval_every={steps}", f"checkpoint_every={steps}", "progress=false",
        *overrides, *[f"algo.network.{k}={v}" for k, v in (net or {}).items()]])
    TrainingRun(cfg, out / name).run()
    return out / name


def tiny_mberil_config(backbone: str = "mlp", **settings):
    """Offline-MB-ERIL small enough for unit tests: TINY_NET, batches of 4 episodes, a
    two-member ensemble, 2-tick rollouts, one warm-start step of each kind; ``settings``
    replace any of these or set other fields."""
    from mberil_ros.algos.offline_mberil import OfflineMBERILConfig

    return OfflineMBERILConfig.from_dict({
        "network": {**TINY_NET, "backbone": backbone}, "bc_warmstart_steps": 1,
        "model_warmstart_steps": 1, "batch_size": 4, "rollout_batch": 4, "ensemble_size": 2,
        "horizon": 2, "fifo_size": 16, **settings})


def tiny_data(root: Path, **kw) -> OfflineData:
    # prefixes of 24 steps keep the tests fast; whole episodes are the default
    return OfflineData(tiny_dataset(root, **kw), DataConfig(val_fraction=0.25, max_seq_len=24))


def warm_start_from(checkpoint: Path, dataset: Path, **network):
    """Offline-MB-ERIL with TINY_NET (and ``network`` settings) started from a BC
    ``checkpoint`` (``algo.init_policy``), built on ``dataset`` with a quarter held out: where
    a warm start is refused, it is here."""
    from mberil_ros.algos.offline_mberil import OfflineMBERIL, OfflineMBERILConfig

    cfg = OfflineMBERILConfig.from_dict({"network": {**TINY_NET, **network},
                                         "init_policy": str(checkpoint),
                                         "data": {"val_fraction": 0.25}})
    return OfflineMBERIL(cfg, OfflineData(dataset, DataConfig(val_fraction=0.25)))


def snapshot(algo) -> dict:
    return {
        "modules": {k: copy.deepcopy(m.state_dict()) for k, m in algo.modules().items()},
        "optimizers": {k: copy.deepcopy(o.state_dict()) for k, o in algo.optimizers().items()},
        "state": copy.deepcopy(algo.state()),
    }


def restore(algo, snap: dict) -> None:
    for k, m in algo.modules().items():
        m.load_state_dict(snap["modules"][k])
    for k, o in algo.optimizers().items():
        o.load_state_dict(snap["optimizers"][k])
    algo.load_state(snap["state"])


def check_algorithm(make: Callable[[int], object], steps: int = 4, more: int = 3) -> None:
    """make(seed) builds the algorithm on its data."""
    algo = make(0)
    for i in range(steps):
        scalars = algo.train_step(i)
        assert scalars and all(math.isfinite(v) for v in scalars.values()), scalars
    metrics = algo.evaluate()
    assert math.isfinite(metrics["nll_pi"])
    snap = snapshot(algo)
    expected = [algo.train_step(steps + i) for i in range(more)]

    other = make(123)  # different init and generator: everything must come from the snapshot
    restore(other, snap)
    got = [other.train_step(steps + i) for i in range(more)]
    assert got == expected  # bit-exact: the runner's resume relies on it

    policy, cfg = algo.export_policy()
    assert cfg["obs_dim"] == RIGHT.obs_dim and cfg["act_dim"] == 6
    assert len(cfg["joint_names"]) == 6
    assert "normalization" in cfg and "context" in cfg and "backbone" in cfg
    other_policy, _ = other.export_policy()
    other_policy.load_state_dict(policy.state_dict())
    obs = torch.randn(2, 5, cfg["obs_dim"])
    with torch.no_grad():
        a, b = policy.eval()(obs), other_policy.eval()(obs)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
