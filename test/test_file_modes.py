"""Datasets and checkpoints get the user's umask (not mkdtemp's private 0700/0600), so
another user or a deployment container can read them."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from mberil_ros.algos.checkpoint import save_checkpoint
from mberil_ros.data.writer import DatasetWriter


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(root):
    out = {root: stat.S_IMODE(root.stat().st_mode)}
    out.update({p: stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")
                if not p.is_symlink()})
    return out


def test_dataset_and_checkpoint_modes_follow_the_umask(tmp_path, umask_022):
    writer = DatasetWriter(tmp_path / "ds", overwrite=False, state_names=["a.pos", "b.pos"],
                           action_names=["a.target"])
    x = np.zeros((5, 2), np.float32)
    writer.add_episode({"label": "expert"}, x, np.zeros((5, 1), np.float32), x,
                       np.arange(5) * 0.02)
    ds = writer.finish({"fps": 50.0, "joints": ["a"]})
    ckpt = save_checkpoint(tmp_path / "run", 10, {"policy": torch.nn.Linear(2, 1)},
                           {"name": "policy"}, {"obs": [0.0]}, {"step": 10})
    for root in (ds, ckpt):
        modes = _modes(root)
        assert len(modes) > 2
        for path, mode in modes.items():
            assert mode == (0o755 if path.is_dir() else 0o644), f"{path}: {oct(mode)}"
