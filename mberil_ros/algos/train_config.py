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
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mberil_ros.errors import UserError

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
    steps: int = 3000  # training iterations (each: the algorithm's train_step)
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


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def dataclass_from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclasses; unknown keys
    raise UserError naming the full dotted key."""
    if not isinstance(data, dict):
        raise UserError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise UserError(f"unknown config key {key!r}; known here: {sorted(fields)}")
    hints = _field_types(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        nested = _dataclass_in(hint)
        if nested is not None and isinstance(value, dict):
            value = dataclass_from_dict(nested, value, f"{where}.{name}" if where else name)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where or 'config'}: {exc}") from None


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["steps=10", "algo.network.backbone=mlp"]`` into a nested mapping (values as YAML
    scalars)."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r}: expected KEY=VALUE")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            raise UserError(f"override {item!r}: value is not valid YAML") from None
        node = config
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = value
    return config


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UserError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data


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
    run = dataclass_from_dict(RunConfig, data)
    run.validate()
    config_cls, _ = algorithm_classes(run.algorithm)
    algo = dataclass_from_dict(config_cls, algo_data, "algo")
    return TrainConfig(run=run, algo=algo)
