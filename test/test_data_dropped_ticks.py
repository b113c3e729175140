"""A dropped tick inside an episode splits it: no transition pairs frames across the hole."""

from __future__ import annotations

import json

import numpy as np
from test_data_convert import _check_against_published

from mberil_ros.cli import main
from mberil_ros.data.dataset import Dataset
from mberil_ros.data.synthetic import MessageFactory, demo_messages, write_bag

NS = 1_000_000_000


def test_dropped_tick_inside_an_episode_splits_it(tmp_path, capsys):
    msgs = list(demo_messages(MessageFactory(), episodes=2, episode_s=3.0))
    # Episode 0 runs 100..103 s: /joint_states goes silent for 0.25 s in the middle, longer
    # than its max_age (0.1 s), so a few ticks there have no usable state.
    hole = (int(101.0 * NS), int(101.25 * NS))
    kept = [m for m in msgs
            if not (m.topic == "/joint_states" and hole[0] < m.t_ns <= hole[1])]
    bag = write_bag(tmp_path / "bag", kept)
    out = tmp_path / "ds"
    assert main(["convert", str(bag), "-o", str(out), "--no-progress"]) == 0
    assert "split at dropped ticks: 1 episode(s): bag#0 (2 parts)" in capsys.readouterr().out
    report = json.loads((out / "meta" / "info.json").read_text())["report"]
    assert report["split_episodes"] == 1 and report["split_episode_parts"] == {"bag#0": 2}
    assert report["dropped_frames"] > 0

    ds = Dataset(out)
    assert ds.num_episodes == 3 and report["episodes"] == 3
    assert [(e["source_episode"], e["segment"], e["segments"]) for e in ds.episodes] == [
        (0, 0, 2), (0, 1, 2), (1, 0, 1)]
    before, after = ds.episode(0), ds.episode(1)
    # Each part is gap-free (one tick between frames) and ends before / starts after the hole.
    for part in (before, after):
        np.testing.assert_allclose(np.diff(part.timestamp), 0.02, atol=1e-4)
    assert 100.0 + before.timestamp[-1] + 0.02 <= 101.1 + 1e-6
    assert 100.0 + after.timestamp[0] >= 101.25 - 1e-6
    # Every next state is the state one tick later (never a state from across the hole),
    # and within each dataset episode next_obs[k] == obs[k + 1].
    _check_against_published(ds, kept)
    assert before.done[-1] and after.done[-1]
