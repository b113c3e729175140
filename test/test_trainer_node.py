"""trainer_node over DDS: progress on /diagnostics, Ctrl-C stops with a final checkpoint."""

from __future__ import annotations

import os

from ros_helpers import require_rclpy, spin_until, start_node, stop_node

from mberil_ros.paths import config_file
from mberil_ros.sim.rollout_dataset import generate_dataset

require_rclpy()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402


def test_trainer_node_reports_progress_and_checkpoints_on_shutdown(tmp_path):
    dataset = generate_dataset(tmp_path / "demos", 6, 3, seed=1)
    overrides = [f"dataset={dataset}", f"output_dir={tmp_path / 'runs'}", "name=node",
                 "steps=100000", "checkpoint_every=100000", "eval_every=100000",
                 "log_every=1", "progress=false", "algo.network.d_model=16",
                 "algo.network.n_layers=1", "algo.network.head_hidden=16", "algo.batch_size=2"]
    proc = start_node("mberil_ros.nodes.trainer_node",
                      {"config": str(config_file("train_bc.yaml")), "overrides": overrides,
                       "publish_rate": 10.0},
                      tmp_path / "trainer.log")
    rclpy.init()
    node = rclpy.create_node("trainer_listener")
    statuses = []
    node.create_subscription(DiagnosticArray, "/diagnostics",
                             lambda m: statuses.extend(m.status), 10)
    try:
        def trained() -> bool:
            steps = [int(dict((kv.key, kv.value) for kv in s.values)["step"]) for s in statuses]
            return bool(steps) and max(steps) >= 5

        assert spin_until(node, trained, timeout=120), (tmp_path / "trainer.log").read_text()
    finally:
        node.destroy_node()
        rclpy.shutdown()
        code = stop_node(proc, timeout=60)
    log = (tmp_path / "trainer.log").read_text()
    assert code == 0, log
    status = statuses[-1]
    values = {kv.key: kv.value for kv in status.values}
    assert status.name == "mberil_ros/trainer" and "train/loss" in " ".join(values)
    last = tmp_path / "runs" / "node" / "checkpoints" / "last"
    assert last.is_symlink(), log
    stopped_at = int(os.readlink(last))
    assert stopped_at >= int(values["step"])  # the final checkpoint holds the last step
    assert f"stopped at step {stopped_at}" in log
