"""The files follow LeRobotDataset v3.0 (docs/lerobot.md) without LeRobot installed: every
data column declared in info.json with its dtype and shape, meta/tasks.parquet, LeRobot's
episode columns and stats layout; older datasets are refused with the fix named."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mberil_ros.cli import main
from mberil_ros.data.dataset import Dataset
from mberil_ros.data.layout import DATA_FILE, ENV_STATE, EPISODES_FILE, TASKS_FILE
from mberil_ros.data.stats import BINS, QUANTILES, HistogramQuantiles, quantile_key, quantiles
from mberil_ros.data.synthetic import MessageFactory, demo_messages, write_bag
from mberil_ros.data.writer import DatasetWriter
from mberil_ros.errors import UserError
from mberil_ros.paths import config_file
from mberil_ros.sim import spaces

ARROW = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}
STATS = {"mean", "std", "min", "max", "count", *map(quantile_key, QUANTILES)}
LEROBOT_INFO = ("codebase_version", "robot_type", "total_episodes", "total_frames",
                "total_tasks", "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb",
                "fps", "splits", "data_path", "video_path", "features")
LEROBOT_EPISODE = ("episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
                   "dataset_from_index", "dataset_to_index", "meta/episodes/chunk_index",
                   "meta/episodes/file_index")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot-format")
    bag = write_bag(root / "bag", demo_messages(MessageFactory(), episodes=3, jitter_s=0.002))
    assert main(["convert", str(bag), "-o", str(root / "ds"), "--no-progress"]) == 0
    return root / "ds"


def check_lerobot_layout(root) -> dict:
    """Everything LeRobotDataset 0.4.4 reads, checked against info.json; returns info."""
    info = json.loads((root / "meta" / "info.json").read_text())
    assert [k for k in LEROBOT_INFO if k not in info] == []
    assert info["codebase_version"] == "v3.0" and info["video_path"] is None
    assert isinstance(info["fps"], int)
    features = info["features"]
    data = pq.read_table(root / DATA_FILE)
    # `datasets` casts the file to these features: the column sets must be equal
    assert sorted(data.column_names) == sorted(features)
    assert len(data) == info["total_frames"]
    for name, ft in features.items():
        typ = data.schema.field(name).type
        if ft["shape"] == [1]:
            assert typ == ARROW[ft["dtype"]], name
        else:
            assert pa.types.is_fixed_size_list(typ) and typ.value_type == ARROW[ft["dtype"]]
            assert [typ.list_size] == ft["shape"] == [len(ft["names"])], name
    for name in ("index", "frame_index", "episode_index", "timestamp", "task_index"):
        assert name in features
    assert data["index"].to_pylist() == list(range(len(data)))

    tasks = pq.read_table(root / TASKS_FILE)
    assert tasks["task_index"].to_pylist() == list(range(info["total_tasks"]))
    # LeRobot reads this file with pandas, indexed by the task string
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    names = tasks["task"].to_pylist()

    episodes = pq.read_table(root / EPISODES_FILE).to_pylist()
    assert len(episodes) == info["total_episodes"] and info["splits"] == {
        "train": f"0:{len(episodes)}"}
    start = 0
    task_index = data["task_index"].to_numpy()
    episode_index = data["episode_index"].to_numpy()
    for i, e in enumerate(episodes):
        assert [k for k in LEROBOT_EPISODE if k not in e] == []
        assert e["episode_index"] == i and e["dataset_from_index"] == start
        assert e["dataset_to_index"] - start == e["length"]
        rows = slice(start, e["dataset_to_index"])
        assert set(episode_index[rows]) == {i}
        assert [names[t] for t in set(task_index[rows])] == e["tasks"]
        for name, ft in features.items():
            assert len(e[f"stats/{name}/mean"]) == ft["shape"][0]
            assert e[f"stats/{name}/count"] == [e["length"]]
        start = e["dataset_to_index"]

    stats = json.loads((root / "meta" / "stats.json").read_text())
    assert set(stats) == set(features)
    for name, st in stats.items():
        assert set(st) == STATS, name
        assert st["count"] == [len(data)]
        width = features[name]["shape"][0]
        assert all(len(st[k]) == width for k in STATS - {"count"})
        q = np.array([st[quantile_key(p)] for p in QUANTILES])
        assert np.all(np.diff(q, axis=0) >= 0)
        assert np.all(q[0] >= np.array(st["min"])) and np.all(q[-1] <= np.array(st["max"]))
    return info


def test_converted_dataset_has_the_lerobot_layout(converted):
    info = check_lerobot_layout(converted)
    assert info["total_tasks"] == 1 and info["robot_type"] == "nextage"
    assert Dataset(converted).tasks == ["reach the target with the right hand"]
    # the environment state LeRobot's ACT and Diffusion Policy need: goal and obstacles
    ds = Dataset(converted)
    lay = spaces.RIGHT
    env = ds.frames()[ENV_STATE]
    obs = ds.frames()["observation.state"]
    np.testing.assert_array_equal(env, obs[:, lay.goal.start:lay.obstacles.stop])
    assert ds.feature_names(ENV_STATE) == lay.state_names[lay.goal.start:]
    # statistics are those of the stored values; quantiles to within (max - min) / BINS
    x = obs.astype(np.float64)
    st = ds.stats_arrays("observation.state")
    for q in QUANTILES:
        err = np.abs(st[quantile_key(q)] - np.quantile(x, q, axis=0))
        assert np.all(err <= (x.max(0) - x.min(0)) / BINS + 1e-6), q
    e = pq.read_table(converted / EPISODES_FILE).to_pylist()[1]
    rows = obs[e["dataset_from_index"]:e["dataset_to_index"]].astype(np.float64)
    np.testing.assert_allclose(e["stats/observation.state/q90"], np.quantile(rows, 0.9, axis=0),
                               rtol=1e-6, atol=1e-6)  # an episode's are exact


def test_histogram_quantiles_follow_numpys_rule():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(20000, 2)), rng.exponential(size=(20000, 2))])
    x[:, 1] = 1.5  # constant
    for data in (x, np.array([[1.0], [2.0], [3.0], [10.0]]), np.array([[5.0]])):
        hist = HistogramQuantiles(data.min(0), data.max(0))
        for part in np.array_split(data, 3):
            hist.update(part)
        exact = quantiles(data)
        bin_width = (data.max(0) - data.min(0)) / BINS
        for key, value in hist.quantiles().items():
            assert np.all(np.abs(np.array(value) - exact[key]) <= bin_width + 1e-12), key


def test_sim_dataset_parts_merge_into_the_same_layout(tmp_path):
    out = tmp_path / "both"
    assert main(["sim-dataset", str(out), "--expert", "2", "--suboptimal", "1", "--arm",
                 "both", "--jobs", "2"]) == 0
    check_lerobot_layout(out)
    ds = Dataset(out)
    assert ds.tasks == ["reach the targets with both hands"]
    assert [e["source_episode"] for e in ds.episodes] == [0, 1, 2]
    assert ds.frames()[ENV_STATE].shape[1] == spaces.BOTH.obs_dim - 2 * spaces.BOTH.act_dim


def test_writer_is_generic_over_vector_features(tmp_path):
    vectors = {"observation.state": ["a.pos", "b.pos"], "observation.extra": ["e"],
               "action": ["a.target"], "next.observation.state": ["a.pos", "b.pos"]}
    writer = DatasetWriter(tmp_path / "ds", overwrite=False, vectors=vectors)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="may not set"):
        writer.add_frames({"length": 3}, {k: np.zeros((3, len(v))) for k, v in vectors.items()},
                          np.zeros(3))
    for task, n in (("push", 4), ("pull", 3), ("push", 2)):
        cols = {k: rng.normal(size=(n, len(v))).astype(np.float32) for k, v in vectors.items()}
        writer.add_frames({"label": "expert"}, cols, np.arange(n) / 10, task=task)
    writer.finish({"fps": 10.0})
    info = check_lerobot_layout(tmp_path / "ds")
    assert info["fps"] == 10 and info["features"]["observation.extra"]["shape"] == [1]
    assert Dataset(tmp_path / "ds").tasks == ["push", "pull"]
    assert pq.read_table(tmp_path / "ds" / DATA_FILE)["task_index"].to_pylist() == (
        [0] * 4 + [1] * 3 + [0] * 2)
    # a copy through the reader: what sim-dataset's merge does
    ds = Dataset(tmp_path / "ds")
    copy = DatasetWriter(tmp_path / "copy", overwrite=False, vectors=ds.vectors)
    for i, e in enumerate(ds.episodes):
        copy.add_frames({"label": e["label"]}, ds.episode_columns(i), ds.episode(i).timestamp,
                        task=e["tasks"][0])
    copy.finish({"fps": ds.info["fps"]})
    assert ds.frames()["observation.extra"].shape == (9, 1)  # a (T, 1) array again
    for name in ("observation.extra", "action", "index", "task_index", "timestamp"):
        np.testing.assert_array_equal(Dataset(tmp_path / "copy").frames()[name],
                                      ds.frames()[name])


def _make_old(root):
    """The layout before LeRobot's tasks file and task_index column were written."""
    (root / TASKS_FILE).unlink()
    info = json.loads((root / "meta" / "info.json").read_text())
    del info["features"]["task_index"]
    (root / "meta" / "info.json").write_text(json.dumps(info))
    data = pq.read_table(root / DATA_FILE)
    pq.write_table(data.drop_columns(["task_index"]), root / DATA_FILE)


def test_older_datasets_are_refused_naming_the_fix(tmp_path, capsys):
    old = tmp_path / "old"
    assert main(["sim-dataset", str(old), "--expert", "2", "--suboptimal", "1",
                 "--jobs", "1"]) == 0
    _make_old(old)
    with pytest.raises(UserError, match="reconvert it with `mberil convert"):
        Dataset(old)
    capsys.readouterr()
    code = main(["train", "--config", str(config_file("train_bc.yaml")), f"dataset={old}",
                 f"output_dir={tmp_path / 'runs'}", "name=x", "steps=1", "progress=false"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "reconvert" in err, err
