"""Writes the dataset layout of docs/dataset.md into a temporary folder, renamed at the end.

    DATASET/meta/info.json, meta/stats.json, meta/tasks.parquet,
    DATASET/meta/episodes/chunk-000/file-000.parquet, DATASET/data/chunk-000/file-000.parquet

The writer is generic over the float32 vector features (``vectors``: name -> value names);
the bookkeeping columns LeRobot needs (layout.FRAME_COLUMNS) are added to every frame.
Frames are buffered per row group only, so memory does not grow with the dataset. A failure
anywhere removes the temporary folder; an existing dataset is replaced (``overwrite``) only
after the new one is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mberil_ros.data import layout
from mberil_ros.data.layout import DATA_FILE, ENV_STATE, EPISODES_FILE, TASKS_FILE
from mberil_ros.data.stats import HistogramQuantiles, RunningStats, array_stats
from mberil_ros.errors import UserError
from mberil_ros.paths import apply_umask

DEFAULT_TASK = "reach the target"


def _arrow(arr: np.ndarray) -> pa.Array:
    """(T, D > 1) -> fixed-size lists; (T,) or (T, 1) -> a plain column (layout.schema)."""
    if arr.ndim == 2 and arr.shape[1] > 1:
        arr = np.ascontiguousarray(arr)
        return pa.FixedSizeListArray.from_arrays(pa.array(arr.ravel()), arr.shape[1])
    return pa.array(arr.reshape(len(arr)))


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
    """``vectors`` declares the float32 features; without it, ``state_names`` and
    ``action_names`` give observation.state, action and next.observation.state."""

    def __init__(self, out: str | Path, *, overwrite: bool,
                 state_names: Sequence[str] | None = None,
                 action_names: Sequence[str] | None = None,
                 vectors: dict[str, list[str]] | None = None, task: str = DEFAULT_TASK,
                 row_group_frames: int = 65536) -> None:
        if vectors is None:
            if state_names is None or action_names is None:
                raise ValueError("give vectors, or state_names and action_names")
            vectors = layout.transition_vectors(state_names, action_names)
        if "/" in "".join(vectors) or set(vectors) & set(layout.FRAME_COLUMNS):
            raise ValueError(f"bad vector feature names {list(vectors)}")
        self.vectors = {name: list(names) for name, names in vectors.items()}
        self._env_cols = self._env_columns()
        self.task = task
        self.out = Path(out)
        self.overwrite = overwrite
        check_output(self.out, overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        self.row_group_frames = row_group_frames
        self.schema = layout.schema(self.vectors)
        widths = {name: len(names) for name, names in self.vectors.items()}
        self.stats = {name: RunningStats(widths.get(name, 1)) for name in self.schema.names}
        self.episodes: list[dict[str, Any]] = []
        self.tasks: dict[str, int] = {}  # task string -> task_index, in order of appearance
        self.frames = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        (self.tmp / DATA_FILE).parent.mkdir(parents=True)
        self._parquet = pq.ParquetWriter(self.tmp / DATA_FILE, self.schema)

    def _env_columns(self) -> np.ndarray | None:
        """Where the environment state's values sit in observation.state (add_episode)."""
        if ENV_STATE not in self.vectors or "observation.state" not in self.vectors:
            return None
        state = self.vectors["observation.state"]
        missing = [n for n in self.vectors[ENV_STATE] if n not in state]
        if missing:
            raise ValueError(f"{ENV_STATE} values {missing} are not in observation.state")
        return np.array([state.index(n) for n in self.vectors[ENV_STATE]], dtype=np.int64)

    def add_episode(self, meta: dict[str, Any], obs: np.ndarray, action: np.ndarray,
                    next_obs: np.ndarray, timestamps: np.ndarray, *,
                    task: str | None = None) -> int:
        """Append one episode of transitions; returns its dataset episode_index."""
        columns = {"observation.state": obs, "action": action, "next.observation.state": next_obs}
        if self._env_cols is not None:
            columns[ENV_STATE] = np.asarray(obs)[:, self._env_cols]
        return self.add_frames(meta, columns, timestamps, task=task)

    def add_frames(self, meta: dict[str, Any], columns: dict[str, np.ndarray],
                   timestamps: np.ndarray, *, task: str | None = None) -> int:
        """Append one episode: a (T, width) array per vector feature, T timestamps (seconds);
        ``task`` (default: the writer's) is the episode's LeRobot task string."""
        n = len(timestamps)
        if n == 0:
            raise ValueError("an episode needs at least one frame")
        if set(columns) != set(self.vectors):
            raise ValueError(f"columns {sorted(columns)} != features {sorted(self.vectors)}")
        clash = [k for k in meta if layout.is_writer_column(k)]
        if clash:
            raise ValueError(f"episode metadata may not set {clash}")
        values: dict[str, np.ndarray] = {}
        for name, names in self.vectors.items():
            values[name] = np.asarray(columns[name], dtype=np.float32)
            if values[name].shape != (n, len(names)):
                raise ValueError(f"{name}: shape {values[name].shape}, want {(n, len(names))}")
        index = len(self.episodes)
        task = self.task if task is None else task
        task_index = self.tasks.setdefault(task, len(self.tasks))
        done = np.zeros(n, dtype=bool)
        done[-1] = True
        values.update({
            "next.done": done, "episode_index": np.full(n, index, dtype=np.int64),
            "frame_index": np.arange(n, dtype=np.int64),
            "timestamp": np.asarray(timestamps, dtype=np.float32),
            "index": np.arange(self.frames, self.frames + n, dtype=np.int64),
            "task_index": np.full(n, task_index, dtype=np.int64),
        })
        table = pa.Table.from_arrays([_arrow(values[f.name]) for f in self.schema],
                                     schema=self.schema)
        episode_stats = {}
        for name, x in values.items():  # from the values actually stored (float32)
            moments, stats = array_stats(x)
            self.stats[name].merge(moments)
            for key, value in stats.items():
                episode_stats[f"{layout.EPISODE_STATS_PREFIX}{name}/{key}"] = value
        self.episodes.append({
            "episode_index": index, "tasks": [task], "length": n,
            "data/chunk_index": 0, "data/file_index": 0,
            "dataset_from_index": self.frames, "dataset_to_index": self.frames + n,
            "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
            **meta, **episode_stats,
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

    def _stats(self) -> dict[str, dict[str, list[float]]]:
        """Dataset statistics; the quantiles from a pass over the written data, in batches,
        once min and max are known."""
        hists = {name: HistogramQuantiles(s.min, s.max) for name, s in self.stats.items()}
        # small batches, read without threads or pre-buffering: this pass adds little memory
        data = pq.ParquetFile(self.tmp / DATA_FILE, pre_buffer=False)
        for batch in data.iter_batches(8192, use_threads=False):
            for name, hist in hists.items():
                hist.update(layout.column_values(batch.column(name)))
        return {name: {**running.to_dict(), **hists[name].quantiles()}
                for name, running in self.stats.items()}

    def finish(self, info: dict[str, Any]) -> Path:
        """Write meta/ (``info`` adds keys to info.json and must hold ``fps``), then move the
        dataset into place."""
        owned = sorted(set(info) & set(layout.INFO_OWNED))
        if owned or "fps" not in info or not self.episodes:
            raise ValueError(f"need episodes, and info with fps and none of {owned}")
        self._flush()
        self._parquet.close()
        meta = self.tmp / "meta"
        (self.tmp / EPISODES_FILE).parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), self.tmp / EPISODES_FILE)
        layout.write_tasks(self.tmp / TASKS_FILE, list(self.tasks))
        (meta / "stats.json").write_text(json.dumps(self._stats(), indent=1))
        full_info = layout.info_header(info["fps"], len(self.episodes), self.frames,
                                       len(self.tasks), self.vectors)
        full_info.update({k: v for k, v in info.items() if k != "fps"})
        (meta / "info.json").write_text(json.dumps(full_info, indent=1))
        self._commit()
        return self.out

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
