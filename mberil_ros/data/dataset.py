"""Read a dataset written by `mberil convert` (docs/dataset.md): meta, stats, per-episode arrays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mberil_ros.data.writer import DATA_FILE, EPISODES_FILE
from mberil_ros.errors import UserError

VECTOR_FEATURES = ("observation.state", "action", "next.observation.state")


@dataclass
class DatasetEpisode:
    index: int
    meta: dict[str, Any]  # label, demonstrator, suite, seed, success, goal, ...
    observation: np.ndarray  # (T, state_dim) float32
    action: np.ndarray  # (T, action_dim) float32
    next_observation: np.ndarray  # (T, state_dim) float32
    timestamp: np.ndarray  # (T,) float32, seconds since the episode's first tick
    done: np.ndarray  # (T,) bool, True on the last frame

    def __len__(self) -> int:
        return len(self.observation)


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    arr = column.combine_chunks()
    width = arr.type.list_size
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


class Dataset:
    """``Dataset(path)``: info/stats/episodes metadata eagerly, frames on first use."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise UserError(f"{self.root}: not a dataset (no meta/info.json)")
        try:
            self.info: dict[str, Any] = json.loads(info_path.read_text())
            self.stats: dict[str, dict[str, list[float]]] = json.loads(
                (self.root / "meta" / "stats.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{self.root}: unreadable dataset metadata ({exc})") from None
        for name in VECTOR_FEATURES:
            if name not in self.info.get("features", {}):
                raise UserError(f"{info_path}: feature {name!r} missing")
        self.episodes: list[dict[str, Any]] = pq.read_table(
            self.root / EPISODES_FILE).to_pylist()
        self._frames: dict[str, np.ndarray] | None = None

    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    def feature_names(self, feature: str) -> list[str]:
        return list(self.info["features"][feature]["names"])

    def stats_arrays(self, feature: str) -> dict[str, np.ndarray]:
        """mean/std/min/max of a feature as float32 arrays (for normalization)."""
        return {k: np.asarray(v, dtype=np.float32) for k, v in self.stats[feature].items()}

    def frames(self) -> dict[str, np.ndarray]:
        """All frames as arrays, loaded once (the trainer samples from these)."""
        if self._frames is None:
            table = pq.read_table(self.root / DATA_FILE)
            frames = {name: _matrix(table[name]) for name in VECTOR_FEATURES}
            for name in ("episode_index", "frame_index", "timestamp", "next.done", "index"):
                frames[name] = table[name].to_numpy()
            if len(frames["action"]) != self.num_frames:
                raise UserError(f"{self.root}: {len(frames['action'])} frames in the data, "
                                f"info.json says {self.num_frames}")
            self._frames = frames
        return self._frames

    def episode(self, i: int) -> DatasetEpisode:
        meta = self.episodes[i]
        lo, hi = meta["dataset_from_index"], meta["dataset_to_index"]
        f = self.frames()
        return DatasetEpisode(i, meta, f["observation.state"][lo:hi], f["action"][lo:hi],
                       f["next.observation.state"][lo:hi], f["timestamp"][lo:hi],
                       f["next.done"][lo:hi])

    def iter_episodes(self, label: str | None = None) -> Iterator[DatasetEpisode]:
        """Episodes in order; ``label`` keeps only expert or suboptimal ones."""
        for i, meta in enumerate(self.episodes):
            if label is None or meta["label"] == label:
                yield self.episode(i)
