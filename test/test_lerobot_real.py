"""LeRobot 0.4.4 itself loads our datasets (scripts/check_lerobot.py) with the frame and
episode counts, fps, episode ranges and action chunks of our own reader. Needs the venv
scripts/check_lerobot.sh makes (.venv-lerobot, or MBERIL_LEROBOT_PYTHON); skips without it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mberil_ros.cli import main

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_lerobot.py"
_spec = importlib.util.spec_from_file_location("check_lerobot", SCRIPT)
check_lerobot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_lerobot)

# only whether the venv exists: one that exists but cannot import lerobot fails the tests
pytestmark = pytest.mark.skipif(
    not check_lerobot.LEROBOT_PYTHON.is_file(),
    reason=f"no lerobot venv: {check_lerobot.LEROBOT_PYTHON} does not exist (make it with "
           "scripts/check_lerobot.sh --setup-only, or set MBERIL_LEROBOT_PYTHON)")

HORIZON = 10


def _check(dataset: Path, act_dim: int) -> None:
    ours, theirs, diffs = check_lerobot.check(dataset, HORIZON)
    assert diffs == []
    assert theirs["lerobot"] == "0.4.4"
    assert theirs["frames"] == ours["frames"] > 0
    assert theirs["episodes"] == ours["episodes"]
    assert theirs["fps"] == 50
    for probe in theirs["probes"]:
        assert probe["action_chunk_shape"] == [HORIZON, act_dim]
    # the last frame of an episode: one real action, the rest padding
    last = [p for p in theirs["probes"] if p["index"] == ours["ranges"][0][1] - 1]
    assert last[0]["action_is_pad"] == [False] + [True] * (HORIZON - 1)


def test_lerobot_loads_a_recorded_and_converted_bag(tmp_path):
    from ros_helpers import require_rclpy

    require_rclpy()
    dataset = check_lerobot.fresh_dataset(tmp_path, "record")
    _check(dataset, act_dim=6)


def test_lerobot_loads_a_both_arms_sim_dataset(tmp_path):
    out = tmp_path / "both"
    assert main(["sim-dataset", str(out), "--expert", "2", "--suboptimal", "1", "--arm",
                 "both", "--jobs", "1"]) == 0
    _check(out, act_dim=12)
