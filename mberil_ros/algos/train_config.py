"""`mberil train` configuration: run settings + one algorithm's config, from YAML + overrides.

    algorithm: offline_mberil     # or bc
    dataset: datasets/demos
    steps: 3000
    ...
    algo:                         # fields of OfflineMBERILConfig / BCConfig
      network:
        backbone: mamba

Overrides are ``key=value`` with dotted keys (``steps=100 algo.network.backbone=mlp``);
values are parsed as YAML scalars. Unknown keys anywhere are an error naming the key.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mberil_ros.errors import UserError
from mberil_ros.settings import apply_overrides, from_mapping, read_yaml

# name -> (module, config class, algorithm class)
ALGORITHMS = {
    "offline_mberil": ("mberil_ros.algos.offline_mberil", "OfflineMBERILConfig", "OfflineMBERIL"),
    "bc": ("mberil_ros.algos.bc", "BCConfig", "BC"),
}


@dataclass
class RunConfig:
    """How to run a training job (the algorithm's own knobs live under `algo:`)."""

    algorithm: str = "offline_mberil"  # offline_mberil | bc
    dataset: str = ""  # dataset folder written by `mberil convert` (docs/dataset.md)
    output_dir: str = "runs"  # run folders go to OUTPUT_DIR/NAME
    name: str = ""  # run name; empty: ALGORITHM-BACKBONE-YYYYmmdd-HHMMSS
    seed: int = 0  # base seed; rank r of a distributed run uses seed + 1000 * r
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    deterministic: bool = False  # torch deterministic algorithms: bit-exact resume on CPU
    num_threads: int = 0  # torch intra-op threads per process; 0 keeps torch's default
    steps: int = 3100  # training iterations (each: the algorithm's train_step), warm starts
    #   included: Offline-MB-ERIL's 3000 warm-start steps, then 100 adversarial iterations
    log_every: int = 10  # steps between TensorBoard/metrics.jsonl rows
    eval_every: int = 250  # steps between held-out evaluations (NLL_pi, NLL_m)
    checkpoint_every: int = 250  # steps between checkpoints (one is also written at the end)
    keep_checkpoints: int = 3  # newest checkpoints kept (plus what last, best and warmstart
    #   point to); 0 keeps every checkpoint
    early_stopping_patience: int = 0  # evaluations without a better score before stopping; 0 off
    eval_episodes: int = 0  # closed-loop episodes per evaluation on validation layouts of the
    #   train suite (never the held-out suites); > 0: `best` = highest success, ties broken by
    #   smaller final distance, then lower NLL_pi; 0: `best` = lowest held-out NLL_pi
    progress: bool = True  # tqdm progress bar (rank 0)

    def validate(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise UserError(f"algorithm: unknown {self.algorithm!r}; known: {sorted(ALGORITHMS)}")
        if not self.dataset:
            raise UserError("dataset: no dataset folder given (dataset=PATH)")
        for name in ("steps", "log_every", "eval_every", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UserError(f"{name}: must be a positive integer, got {value!r}")
        for name in ("keep_checkpoints", "early_stopping_patience", "num_threads", "seed",
                     "eval_episodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"{name}: must be an integer >= 0, got {value!r}")


@dataclass
class TrainConfig:
    run: RunConfig
    algo: Any  # the algorithm's config dataclass

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self.run)
        out["algo"] = dataclasses.asdict(self.algo)
        return out


def algorithm_classes(name: str) -> tuple[type, type]:
    module_name, config_name, algo_name = ALGORITHMS[name]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, algo_name)


def load_train_config(path: Path | None, overrides: list[str],
                      base: dict[str, Any] | None = None) -> TrainConfig:
    """Config file (or ``base``, e.g. a run's saved config) + overrides -> validated config."""
    data = dict(base) if base is not None else (read_yaml(path) if path is not None else {})
    data = apply_overrides(data, overrides)
    algo_data = data.pop("algo", {}) or {}
    run = from_mapping(RunConfig, data)
    run.validate()
    config_cls, _ = algorithm_classes(run.algorithm)
    algo = from_mapping(config_cls, algo_data, "algo")
    return TrainConfig(run=run, algo=algo)
