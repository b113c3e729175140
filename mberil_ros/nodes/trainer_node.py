"""trainer_node: run a training job from a config and report progress on /diagnostics.

Training runs in a worker thread (the same runner as `mberil train`); the node publishes a
diagnostic_msgs/DiagnosticArray a few times per second with the step and latest losses /
held-out NLLs. On shutdown (Ctrl-C, launch exit) it asks the runner to stop, which writes a
final checkpoint before the node exits. When training finishes, the node exits by itself.

    ros2 run mberil_ros trainer_node --ros-args -p config:=config/train.yaml \
        -p overrides:="['dataset=data/demos', 'seed=1']"
    ros2 run mberil_ros trainer_node --ros-args -p fork:=runs/A/checkpoints/warmstart \
        -p overrides:="['name=A-anchor1', 'algo.lambda_nll=1']"
"""

from __future__ import annotations

import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from mberil_ros.algos.runner import TrainingRun, prepare_run
from mberil_ros.errors import UserError
from mberil_ros.nodes import spinning
from mberil_ros.settings import setting


@dataclass
class TrainerNodeParameters:
    config: str = setting("", "training YAML; empty: the package's config/train.yaml")
    # [""]: a typed empty string list (an empty list has no ROS parameter type)
    overrides: list[str] = setting([""], "KEY=VALUE overrides, as for `mberil train`")
    resume: str = setting("", "run folder to resume")
    fork: str = setting("", "checkpoint to start a new run from, as a copy of its run at that "
                        "step (mberil train --fork); the overrides name the new run")
    publish_rate: float = setting(2.0, "Hz: /diagnostics")


class TrainerNode(Node):
    def __init__(self) -> None:
        super().__init__("trainer_node")
        p = spinning.declare_parameters(self, TrainerNodeParameters)
        overrides = [o for o in p["overrides"] if o]
        resume = Path(p["resume"]) if p["resume"] else None
        fork = Path(p["fork"]) if p["fork"] else None
        config = Path(p["config"]) if p["config"] else None
        if config is not None and (resume or fork):
            self.get_logger().warn(f"config {config} is ignored: resume and fork use the run's "
                                   "own config.yaml (change settings with overrides)")
        self.cfg, self.run_dir = prepare_run(config, overrides, resume, fork)
        self.stop_requested = threading.Event()
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.step = 0
        self.scalars: dict[str, float] = {}
        self.error: str | None = None
        self.summary = None
        self.training = TrainingRun(self.cfg, self.run_dir, resume=bool(resume or fork),
                                    should_stop=self.stop_requested.is_set,
                                    on_progress=self._on_progress)
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0 / float(p["publish_rate"]), self.publish)
        self.worker = threading.Thread(target=self._train, name="training", daemon=True)
        self.worker.start()
        self.get_logger().info(f"training {self.cfg.run.algorithm} into {self.run_dir}")

    def _train(self) -> None:
        try:
            self.summary = self.training.run()
        except UserError as exc:
            self.error = str(exc)
        except Exception:  # noqa: BLE001 - reported on /diagnostics and in the log
            self.error = traceback.format_exc().strip().splitlines()[-1]
            traceback.print_exc()
        finally:
            self.done.set()

    def _on_progress(self, step: int, scalars: dict[str, float]) -> None:
        with self.lock:
            self.step = step
            self.scalars.update(scalars)

    def publish(self) -> None:
        with self.lock:
            step, scalars = self.step, dict(self.scalars)
        status = DiagnosticStatus(name="mberil_ros/trainer", hardware_id=str(self.run_dir))
        if self.error is not None:
            status.level, status.message = DiagnosticStatus.ERROR, self.error
        elif self.done.is_set():
            status.level, status.message = DiagnosticStatus.OK, f"finished at step {step}"
        else:
            status.level = DiagnosticStatus.OK
            status.message = f"step {step}/{self.cfg.run.steps}"
        status.values = [KeyValue(key="step", value=str(step)),
                         KeyValue(key="run_dir", value=str(self.run_dir))]
        status.values += [KeyValue(key=k, value=f"{v:.6g}") for k, v in sorted(scalars.items())]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics.publish(msg)

    def stop(self) -> None:
        """Ask the runner to stop; it writes a final checkpoint before returning."""
        self.stop_requested.set()
        self.worker.join()


def _final_status(node: TrainerNode, stopped: bool) -> int:
    if node.done.is_set():
        node.publish()
    return 0


def _stop(node: TrainerNode) -> int:
    """Stop training (a final checkpoint is written) and report how it ended."""
    node.stop()
    if node.error is not None:
        print(f"trainer_node: error: {node.error}", file=sys.stderr)
        return 1
    if node.summary is not None:
        print(f"trainer_node: stopped at step {node.summary.step}; checkpoints in "
              f"{node.run_dir / 'checkpoints'}", flush=True)
    return 0


def main(args: list[str] | None = None) -> int:
    return spinning.run(TrainerNode, "trainer_node", args, done=lambda n: n.done.is_set(),
                        finish=_final_status, cleanup=_stop)


if __name__ == "__main__":
    sys.exit(main())
