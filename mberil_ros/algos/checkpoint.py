"""Checkpoints of docs/checkpoint.md, written atomically.

    RUN/checkpoints/00001000/model.safetensors     every module, keys "{module}.{param}"
                            policy_config.json     how to rebuild and run the policy
                            normalization.json     observation/action normalization
                            training_state.pt      optimizers, RNG, step, algorithm state
    RUN/checkpoints/last -> 00001000               newest complete checkpoint
    RUN/checkpoints/best -> 00000800               best so far (runner.py: closed-loop
                                                   success, else held-out NLL_pi)
    RUN/checkpoints/warmstart -> 00000500          end of the warm start (never pruned)

A checkpoint is written into a hidden temporary folder and renamed into place; the `last`
link is replaced with os.replace. A run killed at any moment leaves `last` pointing at a
complete checkpoint. Weights are safetensors; training_state.pt holds only tensors and plain
Python values and is read with torch.load(weights_only=True), never unpickled freely.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mberil_ros.errors import UserError
from mberil_ros.paths import apply_umask

WEIGHTS = "model.safetensors"
POLICY_CONFIG = "policy_config.json"
NORMALIZATION = "normalization.json"
TRAINING_STATE = "training_state.pt"


def step_dir_name(step: int) -> str:
    return f"{step:08d}"


def flatten_modules(modules: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    flat = {}
    for name, module in modules.items():
        for key, tensor in module.state_dict().items():
            # safetensors refuses shared or non-contiguous storage; copies are cheap here.
            flat[f"{name}.{key}"] = tensor.detach().to("cpu").contiguous().clone()
    return flat


# weights that only one setting of a network option has: a checkpoint with or without them
# names the option to set, instead of only the keys
_UNCLIPPED = (".input_low", ".input_high")  # algo.network.clip_inputs
_GATED = (".slot_index",)  # algo.network.policy_obstacle_gate


def load_modules(modules: dict[str, torch.nn.Module], weights: dict[str, torch.Tensor],
                 source: Path) -> None:
    """Load flattened weights; any missing/unexpected key or shape is a one-line error."""
    expected = {f"{n}.{k}": t.shape for n, m in modules.items() for k, t in m.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(k for k in set(expected) & set(weights)
                    if tuple(expected[k]) != tuple(weights[k].shape))
    if missing or unexpected or shapes:
        detail = "; ".join(part for part in (
            f"missing {len(missing)} (e.g. {missing[0]})" if missing else "",
            f"unexpected {len(unexpected)} (e.g. {unexpected[0]})" if unexpected else "",
            f"shape mismatch in {len(shapes)} (e.g. {shapes[0]}: checkpoint "
            f"{tuple(weights[shapes[0]].shape)}, model {tuple(expected[shapes[0]])})"
            if shapes else "",
        ) if part)
        for keys, suffixes, hint in ((missing, _UNCLIPPED, "without input clipping: set "
                                      "algo.network.clip_inputs=false"),
                                     (missing, _GATED, "without the obstacle gate: set "
                                      "algo.network.policy_obstacle_gate=false"),
                                     (unexpected, _GATED, "with the obstacle gate: set "
                                      "algo.network.policy_obstacle_gate=true")):
            if keys and all(k.endswith(suffixes) for k in keys):
                detail += f"; it was trained {hint} to use it"
        raise UserError(f"{source}: checkpoint from another architecture ({detail})")
    for name, module in modules.items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in weights.items()
                                if k.startswith(prefix)})


def rng_state() -> dict[str, Any]:
    import random

    import numpy as np

    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy_keys": torch.from_numpy(np_state[1].astype("int64")),
        "numpy_pos": int(np_state[2]),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype("uint32"),
                         state["numpy_pos"], 0, 0.0))


def save_checkpoint(
    run_dir: Path,
    step: int,
    modules: dict[str, torch.nn.Module],
    policy_config: dict[str, Any],
    normalization: dict[str, Any],
    training_state: dict[str, Any],
) -> Path:
    """Write checkpoint ``step`` atomically and point ``last`` at it."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
    try:
        save_file(flatten_modules(modules), str(tmp / WEIGHTS),
                  metadata={"format": "pt", "step": str(step)})
        (tmp / POLICY_CONFIG).write_text(json.dumps(policy_config, indent=2))
        (tmp / NORMALIZATION).write_text(json.dumps(normalization, indent=2))
        torch.save(training_state, tmp / TRAINING_STATE)
        for f in tmp.iterdir():  # the data must be on disk before the rename makes it visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        apply_umask(tmp)
        if final.exists():  # re-saving the same step (e.g. final checkpoint == periodic)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    point(root, "last", final.name)
    return final


def point(root: Path, link: str, target: str) -> None:
    """Atomically make ``root/link`` a relative symlink to ``target``."""
    tmp = root / f".{link}.tmp-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, root / link)


def resolve(path: Path) -> Path:
    """A checkpoint folder from a run folder, a checkpoints/ folder or a checkpoint itself."""
    path = Path(path)
    for candidate in (path, path / "checkpoints" / "last", path / "last"):
        if (candidate / WEIGHTS).is_file():
            return candidate.resolve()
    raise UserError(f"{path}: no complete checkpoint ({WEIGHTS} not found, nor a "
                    "checkpoints/last link)")


def arm(checkpoint: Path) -> str:
    """The arm mode a checkpoint's policy was trained for (its policy_config.json joints)."""
    from mberil_ros.sim.spaces import arm_of

    config_path = resolve(checkpoint) / POLICY_CONFIG
    try:
        joints = json.loads(config_path.read_text())["joint_names"]
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{config_path}: cannot read the policy's joints ({exc})") from None
    mode = arm_of(joints)
    if mode is None:
        raise UserError(f"{config_path}: joints {joints} are not one arm or both in order")
    return mode


def load_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(checkpoint / WEIGHTS))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise UserError(f"{checkpoint / WEIGHTS}: unreadable weights ({exc})") from None


def load_training_state(checkpoint: Path, mmap: bool = False) -> dict[str, Any]:
    """The resume state. ``mmap``: tensors (the optimizers' moments, as large as the
    weights twice over) stay on disk until read, for callers after a few counters."""
    path = checkpoint / TRAINING_STATE
    if not path.is_file():
        raise UserError(f"{path}: missing (a policy-only export cannot be resumed)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: unreadable training state ({exc})") from None


def prune(run_dir: Path, keep: int) -> None:
    """Delete old checkpoints beyond the newest ``keep``; never a linked one."""
    root = run_dir / "checkpoints"
    protected = {os.readlink(root / link) for link in ("last", "best", "warmstart")
                 if (root / link).is_symlink()}
    steps = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()
                   and not p.is_symlink())
    for old in steps[:-keep] if keep > 0 else []:
        if old.name not in protected:
            shutil.rmtree(old)
    for stale in root.glob(".*.tmp-*"):  # left by a run killed mid-write
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
