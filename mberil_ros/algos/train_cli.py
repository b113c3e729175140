"""`mberil train --config config/train.yaml [--resume RUN_DIR] [key=value ...]`.

Also the entry point of each rank under torchrun:
    torchrun --nproc_per_node=2 -m mberil_ros.cli train --config config/train.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mberil_ros.paths import config_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="training YAML (default: the package's config/train.yaml; "
                        "ignored with --resume, which reads RUN_DIR/config.yaml)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue a run from its last complete checkpoint")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. dataset=data/demos seed=1 "
                        "algo.network.backbone=mlp")


def run(args: argparse.Namespace) -> int:
    from mberil_ros.algos.distributed import shutdown
    from mberil_ros.algos.runner import TrainingRun, prepare_run

    config = args.config
    if config is None and args.resume is None:
        config = config_file("train.yaml")
    cfg, run_dir = prepare_run(config, args.overrides, args.resume)
    try:
        summary = TrainingRun(cfg, run_dir, resume=args.resume is not None).run()
    finally:
        shutdown()
    if _is_main():
        chosen = ("validation success, then final distance, then NLL_pi"
                  if cfg.run.eval_episodes else "NLL_pi")
        best = (f"best at step {summary.best_step} (NLL_pi {summary.best_nll_pi:.3f}; chosen "
                f"by {chosen})" if summary.best_nll_pi is not None else "no evaluation")
        evals = ", ".join(f"{k} {v:.3f}" for k, v in summary.last_eval.items())
        status = ("interrupted" if summary.interrupted else
                  "stopped early" if summary.stopped_early else "done")
        print(f"training {status}: {summary.step} steps in {summary.seconds:.0f} s; {best}")
        if evals:
            print(f"last evaluation: {evals}")
        print(f"run folder: {summary.run_dir} (checkpoints/last, checkpoints/best)")
    return 130 if summary.interrupted else 0


def _is_main() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0
