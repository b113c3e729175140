"""The LeRobotDataset v3.0 layout a dataset follows (docs/dataset.md, docs/lerobot.md): paths,
the bookkeeping columns every data file has, info.json's LeRobot keys, meta/tasks.parquet.

LeRobot loads the data file through Hugging Face ``datasets`` with the features of info.json
as its schema, so every column must be declared there with its dtype and shape, and every
declared (non-video) feature must be a column.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_FILE = DATA_PATH.format(chunk_index=0, file_index=0)
EPISODES_FILE = EPISODES_PATH.format(chunk_index=0, file_index=0)
TASKS_FILE = "meta/tasks.parquet"

# LeRobot's ACT and Diffusion Policy need images or an environment state as input: the
# task values (goal, obstacles) of observation.state, repeated under this name.
ENV_STATE = "observation.environment_state"

# Columns the writer adds to every frame, after the vector features: name -> arrow type.
FRAME_COLUMNS: dict[str, pa.DataType] = {
    "next.done": pa.bool_(),
    "episode_index": pa.int64(),
    "frame_index": pa.int64(),
    "timestamp": pa.float32(),
    "index": pa.int64(),
    "task_index": pa.int64(),
}
_DTYPES = {pa.bool_(): "bool", pa.int64(): "int64", pa.float32(): "float32"}

# Episode columns the writer owns (LeRobot's); the rest of an episode row is ours.
EPISODE_COLUMNS = ("episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index",
                   "data/chunk_index", "data/file_index", "meta/episodes/chunk_index",
                   "meta/episodes/file_index")
EPISODE_STATS_PREFIX = "stats/"  # stats/FEATURE/STAT: the episode's own statistics

# info.json keys the writer computes; a caller's info may not set them.
INFO_OWNED = ("codebase_version", "total_episodes", "total_frames", "total_tasks", "splits",
              "data_path", "episodes_path", "video_path", "features")


def is_writer_column(name: str) -> bool:
    """An episode column the writer fills in (so a copy must not pass it on as metadata)."""
    return name in EPISODE_COLUMNS or name.startswith(EPISODE_STATS_PREFIX)


def column_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A data column as numpy: (T, D) for a vector feature, (T,) for a scalar one."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_fixed_size_list(arr.type):
        return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, arr.type.list_size)
    return arr.to_numpy(zero_copy_only=False)


def transition_vectors(state_names: Sequence[str], action_names: Sequence[str],
                       env_names: Sequence[str] = ()) -> dict[str, list[str]]:
    """The vector features of a transition dataset; ``env_names`` (values of
    observation.state) add observation.environment_state (ENV_STATE)."""
    vectors = {"observation.state": list(state_names)}
    if env_names:
        vectors[ENV_STATE] = list(env_names)
    vectors["action"] = list(action_names)
    vectors["next.observation.state"] = list(state_names)
    return vectors


def features(vectors: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """info.json ``features``: float32 vectors with their value names, then the bookkeeping."""
    out: dict[str, dict[str, Any]] = {
        name: {"dtype": "float32", "shape": [len(names)], "names": list(names)}
        for name, names in vectors.items()}
    for name, typ in FRAME_COLUMNS.items():
        out[name] = {"dtype": _DTYPES[typ], "shape": [1], "names": None}
    return out


def schema(vectors: dict[str, list[str]]) -> pa.Schema:
    """The data file's schema: the columns ``features(vectors)`` declares, in that order.
    LeRobot reads shape [1] as a scalar, so a one-value vector is a plain float32 column."""
    return pa.schema([(name, pa.list_(pa.float32(), len(names)) if len(names) > 1
                       else pa.float32()) for name, names in vectors.items()]
                     + list(FRAME_COLUMNS.items()))


def info_header(fps: float, episodes: int, frames: int, tasks: int,
                vectors: dict[str, list[str]]) -> dict[str, Any]:
    """The keys LeRobotDataset reads from info.json, in LeRobot's order."""
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": None,
        "total_episodes": episodes,
        "total_frames": frames,
        "total_tasks": tasks,
        # LeRobot's limits when it appends files; this writer always writes one file each
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        # LeRobot types fps as an int; a whole rate is written as one
        "fps": int(fps) if float(fps).is_integer() else float(fps),
        "splits": {"train": f"0:{episodes}"},
        "data_path": DATA_PATH,
        "episodes_path": EPISODES_PATH,
        "video_path": None,
        "features": features(vectors),
    }


def _pandas_metadata() -> bytes:
    """The schema metadata pandas writes for a frame indexed by ``task``: LeRobot reads the
    tasks file with pandas and looks tasks up by that index."""
    return json.dumps({
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
    }).encode()


def write_tasks(path: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet: one row per task string, ``task_index`` its row number."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "task": pa.array(tasks, pa.string())})
    pq.write_table(table.replace_schema_metadata({"pandas": _pandas_metadata()}), path)


def read_tasks(path: Path) -> list[str]:
    """Task strings in task_index order."""
    table = pq.read_table(path, columns=["task_index", "task"]).sort_by("task_index")
    return [str(t) for t in table["task"].to_pylist()]
