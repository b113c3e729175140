"""Read a dataset written by `mberil convert` (docs/dataset.md): meta, stats, per-episode arrays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from mberil_ros.data import layout
from mberil_ros.data.layout import DATA_FILE, EPISODES_FILE, TASKS_FILE
from mberil_ros.errors import UserError

VECTOR_FEATURES = ("observation.state", "action", "next.observation.state")


@dataclass
class DatasetEpisode:
    index: int
    meta: dict[str, Any]  # label, demonstrator, suite, seed, success, goal, tasks, ...
    observation: np.ndarray  # (T, state_dim) float32
    action: np.ndarray  # (T, action_dim) float32
    next_observation: np.ndarray  # (T, state_dim) float32
    timestamp: np.ndarray  # (T,) float32, seconds since the episode's first tick
    done: np.ndarray  # (T,) bool, True on the last frame

    def __len__(self) -> int:
        return len(self.observation)


class Dataset:
    """``Dataset(path)``: info/stats/tasks/episodes metadata eagerly, frames on first use."""

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
        features = self.info.get("features", {})
        if not (self.root / TASKS_FILE).is_file() or "task_index" not in features:
            # written before the files were complete LeRobot v3.0 (issue 14)
            raise UserError(f"{self.root}: an older dataset layout (no {TASKS_FILE}, which "
                            "LeRobot needs); reconvert it with `mberil convert BAG... -o "
                            f"{self.root} --overwrite` (or `mberil sim-dataset`)")
        for name in VECTOR_FEATURES:
            if name not in features:
                raise UserError(f"{info_path}: feature {name!r} missing")
        self.tasks = layout.read_tasks(self.root / TASKS_FILE)
        episodes_path = self.root / EPISODES_FILE
        # per-episode statistics (stats/...) are for LeRobot's tools, not needed here
        columns = [c for c in pq.ParquetFile(episodes_path).schema_arrow.names
                   if not c.startswith(layout.EPISODE_STATS_PREFIX)]
        self.episodes: list[dict[str, Any]] = pq.read_table(
            episodes_path, columns=columns).to_pylist()
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

    @property
    def vectors(self) -> dict[str, list[str]]:
        """The float32 vector features and their value names (what DatasetWriter takes)."""
        return {name: list(ft["names"]) for name, ft in self.info["features"].items()
                if name not in layout.FRAME_COLUMNS}

    def feature_names(self, feature: str) -> list[str]:
        return list(self.info["features"][feature]["names"])

    def stats_arrays(self, feature: str) -> dict[str, np.ndarray]:
        """mean/std/min/max/count/q01.. of a feature as float32 arrays (normalization)."""
        return {k: np.asarray(v, dtype=np.float32) for k, v in self.stats[feature].items()}

    def frames(self) -> dict[str, np.ndarray]:
        """All frames as arrays, one per column, loaded once (the trainer samples these)."""
        if self._frames is None:
            table = pq.read_table(self.root / DATA_FILE)
            declared = set(self.info["features"])
            if set(table.column_names) != declared:
                raise UserError(f"{self.root / DATA_FILE}: columns {sorted(table.column_names)}"
                                f" differ from the features of info.json {sorted(declared)}")
            frames = {name: layout.column_values(table[name]) for name in table.column_names}
            for name in self.vectors:  # a one-value vector is stored as a scalar column
                frames[name] = frames[name].reshape(len(frames[name]), -1)
            if len(frames["action"]) != self.num_frames:
                raise UserError(f"{self.root}: {len(frames['action'])} frames in the data, "
                                f"info.json says {self.num_frames}")
            self._frames = frames
        return self._frames

    def episode_columns(self, i: int) -> dict[str, np.ndarray]:
        """Episode ``i``'s rows of every vector feature (to copy it: DatasetWriter.add_frames)."""
        meta = self.episodes[i]
        lo, hi = meta["dataset_from_index"], meta["dataset_to_index"]
        f = self.frames()
        return {name: f[name][lo:hi] for name in self.vectors}

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
