"""The training runner: run folder, loop, logging, evaluation, checkpoints, resume, DDP.

    runs/NAME/config.yaml            the resolved config (resume reads it back)
    runs/NAME/metrics.jsonl          one row per logged step (rank 0)
    runs/NAME/events.out.tfevents.*  TensorBoard scalars
    runs/NAME/eval/00000200.json     held-out metrics per evaluation
    runs/NAME/checkpoints/...        see checkpoint.py

Algorithms stay unaware of all this (base.py). Only rank 0 writes files; all ranks take the
same optimizer steps (distributed.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import torch
import yaml

from mberil_ros.algos import checkpoint as ckpt
from mberil_ros.algos.base import no_grad_sync
from mberil_ros.algos.distributed import (
    DistInfo,
    average_gradients,
    broadcast_from_main,
    broadcast_modules,
    gather_objects,
    init_distributed,
    parameters_identical,
)
from mberil_ros.algos.train_config import TrainConfig, algorithm_classes, load_train_config
from mberil_ros.errors import UserError
from mberil_ros.paths import config_file, write_text_atomic

ProgressCallback = Callable[[int, dict[str, float]], None]


@dataclasses.dataclass
class Summary:
    run_dir: Path
    step: int
    best_step: int | None
    best_nll_pi: float | None
    last_eval: dict[str, float]
    stopped_early: bool
    interrupted: bool
    seconds: float


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device: {name} requested but CUDA is not available")
    return device


def default_run_name(cfg: TrainConfig) -> str:
    backbone = cfg.algo.network.backbone
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return "-".join(p for p in (cfg.run.algorithm, backbone, stamp) if p)


class TrainingRun:
    """One training job. ``should_stop`` is polled every step (the trainer node's shutdown);
    ``on_progress(step, scalars)`` is called after each logged step and evaluation."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool = False,
                 should_stop: Callable[[], bool] = lambda: False,
                 on_progress: ProgressCallback | None = None) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.resume = resume
        self.should_stop = should_stop
        self.on_progress = on_progress

    # ----- set-up -----
    def _setup(self) -> None:
        run = self.cfg.run
        self.device = pick_device(run.device)
        self.dist: DistInfo = init_distributed(self.device)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        if run.num_threads:
            torch.set_num_threads(run.num_threads)
        if run.deterministic:
            torch.use_deterministic_algorithms(True)
        seed = run.seed + 1000 * self.dist.rank
        torch.manual_seed(seed)

        from mberil_ros.algos.data import OfflineData

        if not Path(run.dataset).is_dir():
            raise UserError(f"dataset: {run.dataset}: not a folder")
        _, algo_cls = algorithm_classes(run.algorithm)
        try:
            # The episode split uses algo.data.split_seed, never the rank: all ranks agree.
            data = OfflineData(run.dataset, self.cfg.algo.data)
            self.algo = algo_cls(self.cfg.algo, data, self.device, seed)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        self.algo.grad_sync = no_grad_sync
        self.val_task = None
        if run.eval_episodes and self.dist.is_main:
            self.val_task = self._validation_task(data)
        if self.dist.enabled:
            broadcast_modules(self.algo.modules().values())
            self.algo.grad_sync = average_gradients(self.dist.world_size)

        self.step = 0
        self.saved_step = -1
        self.best_nll: float | None = None
        self.best_score: tuple[float, ...] | None = None
        self.warm_step: int | None = None
        self.best_step: int | None = None
        self.evals_since_best = 0
        if self.resume:
            self._load(ckpt.resolve(self.run_dir))

        self.writer = None
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "eval").mkdir(exist_ok=True)
            write_text_atomic(self.run_dir / "config.yaml",
                              yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir), purge_step=self.step + 1)
            self.metrics = (self.run_dir / "metrics.jsonl").open("a")

    def _load(self, checkpoint: Path) -> None:
        modules = self.algo.modules()
        ckpt.load_modules(modules, ckpt.load_weights(checkpoint), checkpoint)
        state = ckpt.load_training_state(checkpoint)
        for name, optimizer in self.algo.optimizers().items():
            optimizer.load_state_dict(state["optimizers"][name])
        ranks = state["ranks"]
        mine = ranks[self.dist.rank] if self.dist.rank < len(ranks) else None
        if mine is not None:
            ckpt.set_rng_state(mine["rng"])
            self.algo.load_state(mine["algo"])
        self.step = int(state["step"])
        self.saved_step = self.step
        self.best_nll = state.get("best_nll_pi")
        score = state.get("best_score")
        self.best_score = tuple(float(v) for v in score) if score is not None else None
        self.warm_step = state.get("warm_step")
        self.best_step = state.get("best_step")
        self.evals_since_best = int(state.get("evals_since_best", 0))
        if self.dist.is_main:
            print(f"resumed from {checkpoint} at step {self.step}")

    # ----- loop -----
    def run(self) -> Summary:
        start = time.monotonic()
        self._setup()
        run = self.cfg.run
        if self.dist.is_main:
            algo, n = self.cfg.algo, self.dist.world_size
            batch = getattr(algo, "batch_size", None)
            if batch is not None:
                line = (f"effective batch: {batch} x {n} process(es) = {batch * n} whole "
                        "episodes per step")
                if algo.network.backbone == "mlp" and hasattr(algo, "step_batch_size"):
                    k = algo.step_batch_size
                    line += f"; behaviour cloning: {k} x {n} = {k * n} i.i.d. expert steps"
                print(line)
            bank, off = self.algo.data.distractors, self.algo.data.distractors_off
            if off:
                print(f"note: algo.data.distractors={algo.data.distractors} has no effect: "
                      f"the dataset's observation has {off}")
            if bank is not None:
                print(f"distractor obstacles: p={algo.data.distractors} per sequence; "
                      f"{bank.coverage():.0%} of the training episodes have room for one")
            warm_left = getattr(self.algo, "warmstart_remaining", 0)
            if warm_left and self.step + warm_left >= run.steps:
                print(f"note: steps={run.steps} ends inside the warm start ({warm_left} more "
                      "steps): no adversarial iteration runs and the result is the warm start; "
                      "raise steps")
            decay = getattr(algo, "lr_decay_steps", 0)
            if 0 < decay < run.steps:
                print(f"note: algo.lr_decay_steps={decay} < steps={run.steps}: the learning "
                      f"rate is 0 after step {decay}")
        bar = None
        if self.dist.is_main and run.progress:
            from tqdm import tqdm

            # a 0x0 pseudo-terminal (ros2 launch's emulate_tty) would get an empty bar
            wide = shutil.get_terminal_size((0, 0)).columns > 0
            bar = tqdm(total=run.steps, initial=self.step, desc="training", unit="step",
                       dynamic_ncols=wide, ncols=None if wide else 100)
        last_eval: dict[str, float] = {}
        stopped_early = interrupted = False
        try:
            while self.step < run.steps:
                if self.should_stop():
                    interrupted = True
                    break
                self.step += 1
                was_warm = getattr(self.algo, "warm", None)
                scalars = self.algo.train_step(self.step)
                if was_warm is False and self.algo.warm:
                    # the warm-start end, kept (never pruned) to compare the algorithm with
                    self.warm_step = self.step
                    self._checkpoint(link="warmstart")
                if self.step % run.log_every == 0:
                    self._log(scalars, "train")
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.3g}" for k, v in list(scalars.items())[:4]})
                if bar is not None:
                    bar.update(1)
                if self.step % run.eval_every == 0 or self.step == run.steps:
                    last_eval = self._evaluate()
                    if (run.early_stopping_patience
                            and self.evals_since_best >= run.early_stopping_patience):
                        stopped_early = True
                if self.step % run.checkpoint_every == 0 or stopped_early:
                    self._checkpoint()
                if stopped_early:
                    break
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if bar is not None:
                bar.close()
        self._checkpoint()  # the final (or interrupted) state is never lost; no-op if saved
        if self.writer is not None:
            self.writer.close()
            self.metrics.close()
        return Summary(self.run_dir, self.step, self.best_step, self.best_nll, last_eval,
                       stopped_early, interrupted, time.monotonic() - start)

    def _log(self, scalars: dict[str, float], group: str) -> None:
        if self.on_progress is not None:
            self.on_progress(self.step, {f"{group}/{k}": v for k, v in scalars.items()})
        if not self.dist.is_main:
            return
        for key, value in scalars.items():
            self.writer.add_scalar(f"{group}/{key}", value, self.step)
        row = {"step": self.step, "group": group, **{k: float(v) for k, v in scalars.items()}}
        self.metrics.write(json.dumps(row) + "\n")
        self.metrics.flush()

    def _evaluate(self) -> dict[str, float]:
        metrics = {k: float(v) for k, v in self.algo.evaluate().items()}
        # an algorithm in its warm start (Offline-MB-ERIL's BC phase), or at its very end, is
        # evaluated and logged but never chosen as best: the result must be the algorithm's
        warm = bool(getattr(self.algo, "warm", True))
        eligible = warm and (self.warm_step is None or self.step > self.warm_step)
        metrics["warm"] = float(warm)
        if self.cfg.run.eval_episodes and self.dist.is_main:
            metrics.update(self._closed_loop())
        # Every rank must take the same best-checkpoint and early-stopping decisions (they
        # involve collectives): rank 0's numbers decide.
        metrics = broadcast_from_main(metrics, self.dist)
        nll = metrics.get("nll_pi")
        score = self._score(metrics)
        improved = eligible and score is not None and (self.best_score is None
                                                       or score > self.best_score)
        if improved:
            self.best_score, self.best_step, self.evals_since_best = score, self.step, 0
            self.best_nll = nll
            self._checkpoint(best=True)
        elif eligible:
            self.evals_since_best += 1
        self._log(metrics, "eval")
        if self.dist.is_main:
            path = self.run_dir / "eval" / f"{ckpt.step_dir_name(self.step)}.json"
            path.write_text(json.dumps({"step": self.step, **metrics}, indent=2))
        return metrics

    def _score(self, metrics: dict[str, float]) -> tuple[float, ...] | None:
        """Higher is better: closed-loop success first (when measured), then -NLL_pi."""
        nll = metrics.get("nll_pi")
        if nll is None or not math.isfinite(nll):
            return None
        if "val/success" in metrics:
            return (metrics["val/success"], -metrics["val/final_distance"], -nll)
        return (-nll,)

    @staticmethod
    def _validation_task(data):  # noqa: ANN001, ANN205 - OfflineData -> ReachingTask
        """The simulator task for closed-loop selection, refused up front (not after hours of
        training) when the dataset's observation layout is not the simulator's."""
        from mberil_ros.eval.closed_loop import task_state_names
        from mberil_ros.sim.task import ReachingTask

        task = ReachingTask("train", data.arm)
        sim_names = task_state_names(task)
        if list(data.state_names) != sim_names:
            raise UserError(f"eval_episodes: dataset {data.name} has {len(data.state_names)} "
                            f"observation features, the simulator {len(sim_names)} (another "
                            "layout): closed-loop selection needs a dataset from this version "
                            "(set eval_episodes=0 to select on NLL_pi)")
        return task

    def _closed_loop(self) -> dict[str, float]:
        """Success of the current policy on validation layouts of the train suite."""
        from mberil_ros.eval.closed_loop import (
            VALIDATION_SEED_BASE,
            policy_controller,
            run_episode,
            summarize,
        )

        policy, config = self.algo.export_policy()
        controller = policy_controller(policy, config)
        results = [run_episode(self.val_task, controller, VALIDATION_SEED_BASE + i)
                   for i in range(self.cfg.run.eval_episodes)]
        s = summarize(results)
        return {f"val/{k}": float(s[k]) for k in ("success", "collision", "final_distance",
                                                   "sign_changes")}

    def _checkpoint(self, best: bool = False, link: str | None = None) -> None:
        root = self.run_dir / "checkpoints"
        links = (["best"] if best else []) + ([link] if link else [])
        if self.step == self.saved_step:  # same decision on every rank: no collectives
            if self.dist.is_main:
                for name in links:
                    ckpt.point(root, name, ckpt.step_dir_name(self.step))
            return
        self.saved_step = self.step
        modules = self.algo.modules()
        per_rank = gather_objects({"rng": ckpt.rng_state(), "algo": self.algo.state()},
                                  self.dist)
        if self.dist.enabled:
            if not parameters_identical(modules.values()):
                raise RuntimeError("distributed ranks hold different weights: gradient "
                                   "averaging failed")
            if self.dist.is_main:
                print(f"step {self.step}: parameters identical across "
                      f"{self.dist.world_size} ranks", flush=True)
        if not self.dist.is_main:
            return
        policy, policy_config = self.algo.export_policy()
        policy_config = dict(policy_config)
        policy_config.setdefault("weights_prefix", next(
            (name for name, m in modules.items() if m is policy), "policy"))
        if policy_config["weights_prefix"] not in modules:
            modules = {**modules, policy_config["weights_prefix"]: policy}
        normalization = policy_config.pop("normalization", {})
        state = {
            "step": self.step,
            "optimizers": {n: o.state_dict() for n, o in self.algo.optimizers().items()},
            "ranks": per_rank,
            "best_nll_pi": self.best_nll,
            "best_score": list(self.best_score) if self.best_score is not None else None,
            "warm_step": self.warm_step,
            "best_step": self.best_step,
            "evals_since_best": self.evals_since_best,
            "world_size": self.dist.world_size,
        }
        ckpt.save_checkpoint(self.run_dir, self.step, modules, policy_config, normalization,
                             state)
        for name in links:
            ckpt.point(root, name, ckpt.step_dir_name(self.step))
        ckpt.prune(self.run_dir, self.cfg.run.keep_checkpoints)


def prepare_run(config: Path | None, overrides: list[str], resume: Path | None = None,
                fork: Path | None = None) -> tuple[TrainConfig, Path]:
    """Resolve the config and the run folder for a new, resumed or forked run (``config``:
    the training YAML of a new run; None: the package's train.yaml). The caller resumes a
    resumed or forked run (TrainingRun(resume=True))."""
    if resume is not None and fork is not None:
        raise UserError("resume and fork are both set: a run either continues or forks")
    if fork is not None:
        from mberil_ros.algos.fork import prepare_fork

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UserError("--fork under torchrun: fork with one process first (steps= the "
                            "checkpoint's step copies without training), then torchrun ... "
                            "--resume the new run folder")
        return prepare_fork(fork, overrides)
    if resume is not None:
        saved = resume / "config.yaml"
        if not saved.is_file():
            raise UserError(f"{resume}: not a run folder (no config.yaml)")
        base = yaml.safe_load(saved.read_text())
        cfg = load_train_config(None, overrides, base=base)
        return cfg, resume
    cfg = load_train_config(config or config_file("train.yaml"), overrides)
    name = cfg.run.name or default_run_name(cfg)
    run_dir = Path(cfg.run.output_dir) / name
    if (run_dir / "checkpoints").exists():
        raise UserError(f"{run_dir}: run folder already has checkpoints "
                        f"(resume with --resume {run_dir}, or pick another name=)")
    cfg.run.name = name
    return cfg, run_dir
