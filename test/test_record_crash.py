"""`mberil record` with its recorder killed by SIGKILL mid-recording (a power cut, the OOM
killer, a crashed container): the command stops the whole recording at once, in one line
naming the cause and the log, and `mberil convert` reads back every episode that had ended
a moment before the kill, identical to an uninterrupted recording of the same seeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ros_helpers import child_process, require_rclpy, spin_until, stop_node

require_rclpy()

import rclpy  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from mberil_ros.cli import main as cli_main  # noqa: E402
from mberil_ros.data.dataset import Dataset  # noqa: E402

pytestmark = pytest.mark.ros
SEED = 40
EPISODES = 20  # far more than are recorded before the kill
REFERENCE = 8  # the uninterrupted recording: the first seeds, more than end before the kill


def record_command(bag, storage: str, episodes: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mberil_ros.cli", "record", "-o", str(bag), "--episodes",
            str(episodes), "--suboptimal", "0", "--seed", str(SEED), "--storage", storage,
            "--real-time-factor", "20", *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """seed -> episode of an uninterrupted recording."""
    root = tmp_path_factory.mktemp("uninterrupted")
    run = subprocess.run(record_command(root / "bag", "mcap", REFERENCE), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert cli_main(["convert", str(root / "bag"), "-o", str(root / "ds"),
                     "--no-progress"]) == 0
    return {e.meta["seed"]: e for e in Dataset(root / "ds").iter_episodes()}


@pytest.mark.parametrize("storage, extra", [("mcap", ["--max-bag-duration", "8"]),
                                            ("sqlite3", [])])
def test_a_killed_recorder_stops_the_recording_and_loses_only_its_last_moments(
        tmp_path, reference, storage, extra):
    bag = tmp_path / "bag"
    rclpy.init()
    node = rclpy.create_node("crash_witness")
    ends: dict[int, float] = {}  # seed -> when its end marker arrived (monotonic s)

    def on_marker(msg: String) -> None:
        marker = json.loads(msg.data)
        if marker["event"] == "end":
            ends[marker["seed"]] = time.monotonic()

    node.create_subscription(String, "/task/episode", on_marker, QoSProfile(
        depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    err = tmp_path / "record.err"
    proc = subprocess.Popen(record_command(bag, storage, EPISODES, *extra),
                            stdout=subprocess.DEVNULL, stderr=err.open("w"))
    try:
        assert spin_until(node, lambda: len(ends) >= 2, timeout=180), err.read_text()[-3000:]
        second = sorted(ends.values())[1]
        spin_until(node, lambda: time.monotonic() >= second + 2.2 or len(ends) >= REFERENCE)
        recorder = child_process(proc.pid, "mberil_ros.nodes.recorder_node")
        assert recorder is not None and proc.poll() is None
        os.kill(recorder, signal.SIGKILL)
        killed = time.monotonic()
        ended = dict(ends)
        assert spin_until(node, lambda: proc.poll() is not None, timeout=60)
        exited = time.monotonic()
        spin_until(node, lambda: False, timeout=2.0)  # two episodes' time, were they going on
        total_ended = len(ends)
    finally:
        if proc.poll() is None:
            stop_node(proc)
        node.destroy_node()
        rclpy.shutdown()

    # The command stopped the sim and the demonstrator at once, in one line.
    message = err.read_text().strip().splitlines()[-1]
    assert proc.returncode == 2, message
    assert message.startswith("mberil record: error: recorder_node was killed by SIGKILL")
    assert f"log: {bag}.logs/recorder_node.log" in message
    # at most the episode that was running at the kill ended from the kill until 2 s after the
    # exit: the sim stopped at once (counted in episodes, several a second at 20x real time,
    # not in wall-clock time, which a loaded machine stretches)
    assert total_ended <= len(ended) + 1, (
        f"episodes went on after the kill (the command exited {exited - killed:.2f} s after it)")

    # Every episode that ended 2 s before the kill is read back, as recorded uninterrupted.
    assert cli_main(["convert", str(bag), "-o", str(tmp_path / "ds"), "--no-progress"]) == 0
    got = {e.meta["seed"]: e for e in Dataset(tmp_path / "ds").iter_episodes()}
    must = {seed for seed, t in ended.items() if t <= killed - 2.0}
    print(f"exit {exited - killed:.2f} s after the kill; ended: {len(ended)}, 2 s before the "
          f"kill: {sorted(must)}, read back: {sorted(got)}")  # shown with -rP
    assert len(must) >= 2 and must <= set(got) <= set(reference), (must, set(got))
    for seed, episode in got.items():
        expected = reference[seed]
        assert episode.meta["success"] == expected.meta["success"]
        np.testing.assert_array_equal(episode.observation, expected.observation)
        np.testing.assert_array_equal(episode.action, expected.action)
        np.testing.assert_array_equal(episode.next_observation, expected.next_observation)
    if storage == "mcap":  # split every 8 s of sim time: closed files and the cut last one
        assert len(list(bag.glob("*.mcap"))) >= 2
