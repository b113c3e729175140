"""`mberil train --config config/train.yaml [--resume RUN_DIR | --fork CHECKPOINT] [key=value ...]`.

Also the entry point of each rank under torchrun:
    torchrun --nproc_per_node=2 -m mberil_ros.cli train --config config/train.yaml
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  mberil train dataset=datasets/reach name=mb-mamba\n"
        "  mberil train --config config/train_bc.yaml dataset=datasets/reach "
        "algo.network.backbone=mlp\n"
        "  mberil train --resume runs/mb-mamba steps=4000  # continue, and for longer\n"
        "  mberil train --fork runs/mb-mamba/checkpoints/warmstart name=mb-anchor1 "
        "algo.lambda_nll=1  # the adversarial phase again from the same warm start")
    parser.add_argument("--config", type=Path, default=None,
                        help="training YAML (default: the package's config/train.yaml; "
                        "ignored with --resume and --fork, which read the run's config.yaml)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue a run from its last complete checkpoint")
    start.add_argument("--fork", type=Path, metavar="CHECKPOINT",
                       help="start a new run (name=, default SOURCE-from-STEP) as a copy of "
                       "a run at a saved checkpoint, e.g. RUN/checkpoints/warmstart, and "
                       "continue it with the overrides: the same history, another future")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. dataset=data/demos seed=1 "
                        "algo.network.backbone=mlp")


def run(args: argparse.Namespace) -> int:
    from mberil_ros.algos.distributed import shutdown
    from mberil_ros.algos.runner import TrainingRun, prepare_run

    if args.config is not None and (args.resume or args.fork) and _is_main():
        print(f"note: --config {args.config} is ignored: --resume and --fork use the run's "
              "own config.yaml (change settings with key=value)")
    cfg, run_dir = prepare_run(args.config, args.overrides, args.resume, args.fork)
    resume = args.resume is not None or args.fork is not None
    try:
        summary = TrainingRun(cfg, run_dir, resume=resume).run()
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
    return int(os.environ.get("RANK", "0")) == 0
