"""Writes the dataset layout of docs/dataset.md into a temporary folder, renamed at the end.

    DATASET/meta/info.json, meta/stats.json, meta/episodes/chunk-000/file-000.parquet
    DATASET/data/chunk-000/file-000.parquet

Frames are buffered per row group only, so memory does not grow with the dataset. A failure
anywhere removes the temporary folder; an existing dataset is replaced (``overwrite``) only
after the new one is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mberil_ros.data.stats import RunningStats
from mberil_ros.errors import UserError
from mberil_ros.paths import apply_umask

DATA_FILE = "data/chunk-000/file-000.parquet"
EPISODES_FILE = "meta/episodes/chunk-000/file-000.parquet"
CODEBASE_VERSION = "v3.0"  # LeRobotDataset layout this follows


def _vectors(arr: np.ndarray) -> pa.FixedSizeListArray:
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.ravel()), arr.shape[1])


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse an existing output unless ``overwrite``; never replace a non-dataset folder."""
    if not out.exists():
        return
    if not overwrite:
        raise UserError(f"{out}: output already exists (use --overwrite to replace it)")
    if out.is_dir() and not (out / "meta" / "info.json").is_file() and any(out.iterdir()):
        raise UserError(f"{out}: exists and is not a dataset (no meta/info.json); "
                        "not replacing it")
    if not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; not replacing it")


class DatasetWriter:
    def __init__(self, out: str | Path, *, overwrite: bool, state_names: list[str],
                 action_names: list[str], row_group_frames: int = 65536) -> None:
        self.out = Path(out)
        self.overwrite = overwrite
        check_output(self.out, overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        self.state_names, self.action_names = state_names, action_names
        self.row_group_frames = row_group_frames
        self.schema = pa.schema([
            ("observation.state", pa.list_(pa.float32(), len(state_names))),
            ("action", pa.list_(pa.float32(), len(action_names))),
            ("next.observation.state", pa.list_(pa.float32(), len(state_names))),
            ("next.done", pa.bool_()),
            ("episode_index", pa.int64()),
            ("frame_index", pa.int64()),
            ("timestamp", pa.float32()),
            ("index", pa.int64()),
        ])
        self.stats = {
            "observation.state": RunningStats(len(state_names)),
            "action": RunningStats(len(action_names)),
            "next.observation.state": RunningStats(len(state_names)),
        }
        self.episodes: list[dict[str, Any]] = []
        self.frames = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        (self.tmp / DATA_FILE).parent.mkdir(parents=True)
        self._parquet = pq.ParquetWriter(self.tmp / DATA_FILE, self.schema)

    def add_episode(self, meta: dict[str, Any], obs: np.ndarray, action: np.ndarray,
                    next_obs: np.ndarray, timestamps: np.ndarray) -> int:
        """Append one episode's frames; returns its dataset episode_index."""
        n = len(obs)
        index = len(self.episodes)
        done = np.zeros(n, dtype=bool)
        done[-1] = True
        table = pa.Table.from_arrays([
            _vectors(obs), _vectors(action), _vectors(next_obs), pa.array(done),
            pa.array(np.full(n, index, dtype=np.int64)), pa.array(np.arange(n, dtype=np.int64)),
            pa.array(timestamps.astype(np.float32)),
            pa.array(np.arange(self.frames, self.frames + n, dtype=np.int64)),
        ], schema=self.schema)
        # Stats from the float32 values actually stored.
        self.stats["observation.state"].update(obs.astype(np.float32))
        self.stats["action"].update(action.astype(np.float32))
        self.stats["next.observation.state"].update(next_obs.astype(np.float32))
        self.episodes.append({
            "episode_index": index, "length": n,
            "dataset_from_index": self.frames, "dataset_to_index": self.frames + n,
            "data/chunk_index": 0, "data/file_index": 0, **meta,
        })
        self.frames += n
        self._pending.append(table)
        self._pending_rows += n
        if self._pending_rows >= self.row_group_frames:
            self._flush()
        return index

    def _flush(self) -> None:
        if self._pending:
            self._parquet.write_table(pa.concat_tables(self._pending),
                                      row_group_size=max(self._pending_rows, 1))
            self._pending, self._pending_rows = [], 0

    def finish(self, info: dict[str, Any]) -> Path:
        """Write meta/, then move the dataset into place."""
        self._flush()
        self._parquet.close()
        meta = self.tmp / "meta"
        (self.tmp / EPISODES_FILE).parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), self.tmp / EPISODES_FILE)
        stats = {k: v.to_dict() for k, v in self.stats.items()}
        (meta / "stats.json").write_text(json.dumps(stats, indent=1))
        full_info = {
            "codebase_version": CODEBASE_VERSION,
            "total_episodes": len(self.episodes),
            "total_frames": self.frames,
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "episodes_path": "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "features": self.features(),
            **info,
        }
        (meta / "info.json").write_text(json.dumps(full_info, indent=1))
        self._commit()
        return self.out

    def features(self) -> dict[str, Any]:
        vec = "float32"
        return {
            "observation.state": {"dtype": vec, "shape": [len(self.state_names)],
                                  "names": self.state_names},
            "action": {"dtype": vec, "shape": [len(self.action_names)],
                       "names": self.action_names},
            "next.observation.state": {"dtype": vec, "shape": [len(self.state_names)],
                                       "names": self.state_names},
            "next.done": {"dtype": "bool", "shape": [1], "names": None},
            "episode_index": {"dtype": "int64", "shape": [1], "names": None},
            "frame_index": {"dtype": "int64", "shape": [1], "names": None},
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            "index": {"dtype": "int64", "shape": [1], "names": None},
        }

    def _commit(self) -> None:
        check_output(self.out, self.overwrite)  # it may have appeared while we worked
        apply_umask(self.tmp)
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
            os.rename(self.out, old)
        try:
            os.rename(self.tmp, self.out)
        except OSError:
            if old is not None:
                os.rename(old, self.out)
            raise
        if old is not None:
            shutil.rmtree(old)

    def abort(self) -> None:
        try:
            self._parquet.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
