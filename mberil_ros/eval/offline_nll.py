"""Offline NLL of a trained checkpoint on another dataset (a test set).

    nll = checkpoint_nll("runs/RUN/checkpoints/best", "datasets/heldout_obstacles")

The dataset is read with the checkpoint's own normalization (normalization.json), never
refitted, and every episode is evaluated: NLL_pi on the expert episodes (as in training's
held-out evaluation) and, for Offline-MB-ERIL, NLL_m of the dynamics model over the dims it
predicts (joint positions and velocities), in total and per dim, and past the warm start
the actor signal (`algos/actor_signal.py`: does the discriminator push the policy towards
the expert on these episodes, and how far can it move it). Lower NLL is better; it is a
measure of fit, not of success (that is `mberil eval`'s closed loop).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from mberil_ros.algos import checkpoint as ckpt
from mberil_ros.algos.codec import PolicyCodec
from mberil_ros.algos.data import OfflineData
from mberil_ros.algos.train_config import algorithm_classes, load_train_config
from mberil_ros.data.dataset import Dataset
from mberil_ros.errors import UserError


def checkpoint_nll(checkpoint: str | Path, dataset: str | Path) -> dict[str, float]:
    """NLL_pi (and NLL_m for Offline-MB-ERIL) of ``checkpoint`` on every episode of
    ``dataset``; mismatched joints or features are a one-line UserError."""
    folder = ckpt.resolve(Path(checkpoint))
    run_dir = folder.parent.parent  # RUN/checkpoints/STEP
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise UserError(f"{folder}: no {config_path} (offline NLL needs the run's config)")
    cfg = load_train_config(None, [f"dataset={dataset}"],
                            base=yaml.safe_load(config_path.read_text()))
    if cfg.run.algorithm == "offline_mberil":
        cfg.algo.alpha = 0.0  # the PU prior plays no part in a likelihood
        cfg.algo.init_policy = None
    codec = PolicyCodec.from_dict(json.loads((folder / ckpt.NORMALIZATION).read_text()),
                                  str(folder / ckpt.NORMALIZATION))
    trained = json.loads((folder / ckpt.POLICY_CONFIG).read_text())
    ds = Dataset(dataset)
    for key, feature in (("state_names", "observation.state"), ("action_names", "action")):
        if trained.get(key) != ds.feature_names(feature):
            raise UserError(f"{dataset}: its {feature} names differ from those {folder} was "
                            f"trained on")
    data = OfflineData(ds, cfg.algo.data, codec=codec, evaluate_all=True)
    _, algo_cls = algorithm_classes(cfg.run.algorithm)
    try:
        algo = algo_cls(cfg.algo, data, "cpu", cfg.run.seed)
    except ValueError as exc:
        raise UserError(f"{dataset}: {exc}") from None
    ckpt.load_modules(algo.modules(), ckpt.load_weights(folder), folder)
    with torch.no_grad():
        out = algo.evaluate()
    if hasattr(algo, "actor_signal") and _adversarial(folder):
        out.update(algo.actor_signal())
    return out


def _adversarial(folder: Path) -> bool:
    """Saved after at least one adversarial iteration (its discriminator has trained)?"""
    if not (folder / ckpt.TRAINING_STATE).is_file():
        return False
    state = ckpt.load_training_state(folder, mmap=True)
    warm = state.get("warm_step")
    return warm is not None and int(state["step"]) > int(warm)
