"""`mberil demo --quick` end to end: every artefact exists and is valid, the reported numbers
come from the closed loop (not constants), finished stages are reused, bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ros_helpers import require_rclpy
from safetensors.numpy import load_file, save_file

from mberil_ros.cli import main
from mberil_ros.data.dataset import Dataset
from mberil_ros.eval.closed_loop import evaluate, summarize

require_rclpy()

SMALL = ["--train", "algo.network.d_model=16", "--train", "algo.network.n_layers=1"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    # --quick, with a smaller network still: the test checks the pipeline, not the policy
    assert main(["demo", "--quick", "-o", str(out), *SMALL]) == 0
    return out


def _png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_artefact_is_there_and_valid(demo):
    bag = demo / "bags" / "demos"
    assert (bag / "metadata.yaml").is_file() and list(bag.glob("*.mcap"))
    ds = Dataset(demo / "dataset")
    report = json.loads((demo / "report.json").read_text())
    assert report["dataset"]["episodes"] == len(ds.episodes) >= 2
    assert report["dataset"]["frames"] == sum(m["length"] for m in ds.episodes)
    checkpoint = Path(report["checkpoint"])
    assert (checkpoint / "policy_config.json").is_file()
    assert list(checkpoint.glob("*.safetensors"))
    assert report["training"]["steps"] == 40
    assert {r["suite"] for r in report["closed_loop"]} == {"train", "heldout_init",
                                                            "heldout_obstacles"}
    assert {r["controller"] for r in report["closed_loop"]} == {
        "learned policy", "scripted expert", "hold still"}
    assert all(_png(Path(p)) for p in report["plots"])
    trajectories = list((demo / "plots" / "trajectories").glob("policy-*.png"))
    assert trajectories and all(_png(p) for p in trajectories)
    ros = report["ros"]["episodes"]  # the policy drove sim_node through policy_node
    assert len(ros) == 1 and {"success", "distance"} <= set(ros[0])


def test_reported_numbers_come_from_the_closed_loop(demo):
    report = json.loads((demo / "report.json").read_text())
    rows = {(r["controller"], r["suite"]): r for r in report["closed_loop"]}
    # the same loop tells the expert from a controller that never moves
    for suite in ("train", "heldout_init", "heldout_obstacles"):
        assert rows["scripted expert", suite]["success"] > rows["hold still", suite]["success"]
    # the learned policy's row is what a fresh evaluation of its checkpoint gives ...
    seeds = list(range(report["eval_seeds"][0], report["eval_seeds"][1] + 1))
    checkpoint = Path(report["checkpoint"])
    again = summarize(evaluate(str(checkpoint), "train", seeds, workers=1))
    mine = rows["learned policy", "train"]
    assert again["final_distance"] == pytest.approx(mine["final_distance"], abs=1e-9)
    assert again["success"] == mine["success"]
    # ... and a broken copy of the checkpoint (its weights scrambled) ends elsewhere
    broken = demo / "broken"
    import shutil

    shutil.copytree(checkpoint, broken)
    for f in broken.glob("*.safetensors"):
        rng = np.random.default_rng(0)
        tensors = {k: rng.normal(0, 1, v.shape).astype(v.dtype) if v.dtype.kind == "f" else v
                   for k, v in load_file(f).items()}
        save_file(tensors, f)
    worse = summarize(evaluate(str(broken), "train", seeds, workers=1))
    assert worse["final_distance"] != pytest.approx(mine["final_distance"], abs=1e-6)


def test_a_rerun_reuses_finished_stages_and_redoes_only_what_changed(demo, capsys):
    before = json.loads((demo / "stages.json").read_text())
    checkpoint = demo / "runs" / "mberil-mamba" / "checkpoints" / "last"
    mtime = (checkpoint / "policy_config.json").stat().st_mtime_ns
    assert main(["demo", "--quick", "-o", str(demo), *SMALL, "eval_episodes=2",
                 "ros_episodes=0"]) == 0
    out = capsys.readouterr().out
    for name in ("record", "convert", "train"):
        assert f"[{name}] done before" in out
    after = json.loads((demo / "stages.json").read_text())
    assert after["train"] == before["train"]
    assert (checkpoint / "policy_config.json").stat().st_mtime_ns == mtime
    assert after["eval"]["settings"] == {"episodes": 2}
    report = json.loads((demo / "report.json").read_text())
    assert {r["episodes"] for r in report["closed_loop"]} == {2}
    assert report["ros"] == {"skipped": "ros_episodes=0"}


@pytest.mark.parametrize("argv,needle", [
    (["expert_episodes=1"], "expert_episodes must be >= 2"),
    (["eval_episodes=0"], "eval_episodes must be >= 1"),
    (["no_such_option=1"], "no_such_option"),
    (["--train", "algo.no_such_key=1"], "no_such_key"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, needle):
    rc = main(["demo", "--quick", "-o", str(tmp_path / "d"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0]


def test_a_corrupt_stages_file_is_one_line(tmp_path, capsys):
    (tmp_path / "stages.json").write_text("{not json")
    assert main(["demo", "--quick", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "stages.json" in err and len(err.splitlines()) == 1


def test_without_rclpy_the_demo_uses_sim_data_and_says_so(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "rclpy" else real(name, *a))
    out = tmp_path / "noros"
    small = ["steps=6", "eval_every=3", "checkpoint_every=3", "algo.bc_warmstart_steps=3",
             "algo.model_warmstart_steps=3", "algo.network.d_model=16",
             "algo.network.n_layers=1"]
    assert main(["demo", "--quick", "-o", str(out), "expert_episodes=2",
                 "suboptimal_episodes=1", "eval_episodes=1",
                 *[a for t in small for a in ("--train", t)]]) == 0
    text = capsys.readouterr().out
    assert "$ mberil sim-dataset" in text and "$ mberil record" not in text
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["episodes"] == 3
    assert "rclpy is not importable" in report["ros"]["skipped"]
    assert "skipped, rclpy is not importable" in text
    assert not (out / "bags" / "demos").exists()


def test_a_folder_the_demo_did_not_make_is_never_written_into(tmp_path, capsys):
    mine = tmp_path / "project"
    (mine / "dataset").mkdir(parents=True)
    (mine / "dataset" / "precious.parquet").write_text("data")
    assert main(["demo", "--quick", "-o", str(mine)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a demo folder" in err and len(err.splitlines()) == 1
    assert (mine / "dataset" / "precious.parquet").read_text() == "data"
    assert sorted(p.name for p in mine.iterdir()) == ["dataset"]
