"""scripts/obstacle_way_breakdown.py: layouts rebuilt from an eval JSON's seeds and binned by
the nearest obstacle's distance to the straight start-to-target way."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from mberil_ros.sim.scene import segment_obstacle_distance
from mberil_ros.sim.suites import ON_PATH_DISTANCE, on_straight_path
from mberil_ros.sim.task import ReachingTask

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "obstacle_way_breakdown.py"
_spec = importlib.util.spec_from_file_location("obstacle_way_breakdown", _PATH)
wb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wb)


def test_the_distance_is_the_nearest_obstacle_to_the_start_target_segment():
    task = ReachingTask("heldout_obstacles")
    blocked = 0
    for seed in range(12):
        d = wb.nearest_obstacle_to_way(task, seed)
        task.reset(seed=seed)  # the same layout, looked at directly
        hand, target = task.hand_positions()["right"], np.asarray(task.episode.targets["right"])
        want = min(segment_obstacle_distance(hand, target, o, n=400)
                   for o in task.episode.obstacles)
        assert d == pytest.approx(want, abs=2e-3)
        if any(on_straight_path(hand, target, o) for o in task.episode.obstacles):
            blocked += 1
            assert d < ON_PATH_DISTANCE
    assert blocked > 0  # the suite's on-path draw is exercised


def test_bins_count_every_episode_once():
    episodes = [{"seed": s, "success": s % 2 == 0} for s in range(6)]
    distances = {0: -0.01, 1: 0.05, 2: 0.08, 3: 0.149, 4: 0.15, 5: float("inf")}
    assert wb.breakdown(episodes, distances, [0.075, 0.15]) == [
        ("< 7.5 cm", 1, 2), ("7.5-15 cm", 1, 2), (">= 15 cm", 1, 2)]


def test_main_reads_eval_json_and_refuses_other_input(tmp_path, capsys):
    seeds = [1_000_000, 1_000_001, 1_000_002]
    report = {"seeds": [seeds[0], seeds[-1]], "results": [
        {"controller": "expert", "suite": "heldout_obstacles", "summary": {},
         "episodes": [{"seed": s, "success": True} for s in seeds]}]}
    good = tmp_path / "eval.json"
    good.write_text(json.dumps(report))
    assert wb.main([str(good)]) == 0
    line = capsys.readouterr().out.strip()
    counts = [c.split(": ")[-1] for c in line.split(": ", 1)[1].split(", ")]
    assert sum(int(c.split("/")[1]) for c in counts) == 3
    assert wb.main([str(good), "--suite", "train"]) == 2
    assert "no results for suite 'train'" in capsys.readouterr().err
    bad = tmp_path / "notes.txt"
    bad.write_text("not json")
    assert wb.main([str(bad)]) == 2
    assert "notes.txt: not a JSON of mberil eval --json" in capsys.readouterr().err
    assert wb.main([str(good), "--bins", "0.2", "0.1"]) == 2


def test_the_arm_comes_from_the_json_and_a_mismatch_is_refused(tmp_path, capsys):
    seed = 1_000_005  # a layout whose nearest obstacle is 7 cm from the right arm's way, 16 cm
    # from the left's: the bins tell which arm was read
    right = wb.nearest_obstacle_to_way(ReachingTask("heldout_obstacles", "right"), seed, "right")
    left = wb.nearest_obstacle_to_way(ReachingTask("heldout_obstacles", "left"), seed, "left")
    assert right < 0.1 < left
    report = {"seeds": [seed, seed], "arm": "left", "results": [
        {"controller": "expert", "suite": "heldout_obstacles", "summary": {},
         "episodes": [{"seed": seed, "success": True}]}]}
    path = tmp_path / "left.json"
    path.write_text(json.dumps(report))
    assert wb.main([str(path), "--bins", "0.1"]) == 0
    assert capsys.readouterr().out.strip().endswith("< 10 cm: 0/0, >= 10 cm: 1/1")
    assert wb.main([str(path), "--arm", "right"]) == 2
    assert "evaluated with --arm left" in capsys.readouterr().err
