"""`mberil demo`: the whole pipeline on the embedded MuJoCo NEXTAGE, stage by stage.

    record   sim_node + demonstrator_node + recorder_node over DDS -> OUT/bags/demos
    convert  the bag -> OUT/dataset (without rclpy: `mberil sim-dataset`, the same episodes)
    train    Mamba Offline-MB-ERIL (config/demo.yaml) -> OUT/runs/mberil-mamba
    eval     the learned policy, the scripted expert and hold-still, closed loop in-process,
             on every suite (fresh layouts) -> OUT/eval.json, OUT/plots/trajectories/
    deploy   the learned policy drives sim_node through policy_node over DDS for a few
             episodes (skipped, with the reason, without rclpy)
    report   table, OUT/report.json, OUT/plots/*.png

Each stage runs the same code as its own command (`mberil record`, `convert`, `train`,
`eval`, `deploy`) and prints that command. A finished stage is recorded in OUT/stages.json
with its settings: a re-run skips it while its settings and those of the stages before it
are unchanged, and a stage interrupted half-way is started again (training resumes from
its last checkpoint). Only the stage's own outputs inside OUT are ever removed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mberil_ros.errors import UserError
from mberil_ros.paths import config_file, write_text_atomic
from mberil_ros.settings import command_line, defaults, descriptions, from_mapping, setting

STAGES = ("record", "convert", "train", "eval", "deploy", "report")
NO_ROS = ("rclpy is not importable (install the `ros` extra): the demonstrations come from "
          "`mberil sim-dataset` instead of a recording, and nothing is deployed over ROS")
RUN_NAME = "mberil-mamba"
# The demo's recordings stop 0.5 s after a success rather than the 2 s datasets default to
# (spaces.SETTLE_TICKS): its 20-minute budget was measured with these; its episodes end at
# success, so holding the target longer does not show in what it reports.
DEMO_SETTLE_TICKS = 25


@dataclass
class DemoOptions:
    """`mberil demo` options (flags or KEY=VALUE); --quick changes the defaults only."""

    output: str = setting("mberil-demo", "folder for every artefact (reused by a re-run)")
    expert_episodes: int = setting(400, "expert demonstrations to record")
    suboptimal_episodes: int = setting(60, "sub-optimal demonstrations to record (unlabeled "
                                       "data for the PU discriminators)")
    seed: int = setting(0, "layout seed of the first recorded episode")
    train_config: str = setting("", "training YAML (default: the package's config/demo.yaml)")
    eval_episodes: int = setting(30, "closed-loop episodes per suite and controller")
    ros_episodes: int = setting(3, "episodes driven through sim_node + policy_node (0: skip)")
    workers: int = setting(0, "evaluation processes (0: one per CPU core)")


# --quick: ~1 minute on 2 cores (48 s measured 2026-12-02, the kernel build included); the
# policy is far too small to reach, it shows the pipeline
QUICK = {"expert_episodes": 6, "suboptimal_episodes": 2, "eval_episodes": 3, "ros_episodes": 1}
QUICK_TRAIN = ["steps=40", "eval_every=20", "checkpoint_every=20", "algo.bc_warmstart_steps=20",
               "algo.model_warmstart_steps=10", "algo.batch_size=4", "algo.rollout_batch=4"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "stages: " + " -> ".join(STAGES) + " (a re-run skips finished ones)\n"
        "examples:\n"
        "  mberil demo                    # ~19 min on 2 idle CPU cores\n"
        "  mberil demo expert_episodes=150 suboptimal_episodes=30   # ~12 min, weaker policy\n"
        "  mberil demo --quick -o /tmp/demo-quick\n"
        "  mberil demo eval_episodes=100  # re-runs eval and the stages after it\n"
        "  mberil demo --train algo.bc_warmstart_steps=3000 --train steps=3400")
    text = descriptions(DemoOptions)
    for name, default in defaults(DemoOptions).items():
        flags = ["-o", "--output"] if name == "output" else ["--" + name.replace("_", "-")]
        shown = "" if default == "" else f" (default {default})"
        parser.add_argument(*flags, dest=name, type=type(default), metavar=name.upper(),
                            help=text[name] + shown)
    parser.add_argument("--quick", action="store_true",
                        help="tiny budget (~1 min): checks the pipeline, does not reach")
    parser.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                        help="training override, as for `mberil train` (repeatable)")
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help="options by name (e.g. eval_episodes=100)")


def options(args: argparse.Namespace) -> tuple[DemoOptions, list[str]]:
    base = defaults(DemoOptions) | (QUICK if args.quick else {})
    o = from_mapping(DemoOptions, command_line(DemoOptions, args, "demo", base), "demo")
    for key in ("expert_episodes", "suboptimal_episodes", "seed", "ros_episodes", "workers"):
        if getattr(o, key) < 0:
            raise UserError(f"demo: {key} must be >= 0, got {getattr(o, key)}")
    if o.expert_episodes < 2:
        raise UserError(f"demo: expert_episodes must be >= 2 (training and validation), got "
                        f"{o.expert_episodes}")
    if o.eval_episodes < 1:
        raise UserError(f"demo: eval_episodes must be >= 1, got {o.eval_episodes}")
    train = (QUICK_TRAIN if args.quick else []) + list(args.train)
    from mberil_ros.algos.train_config import load_train_config

    # a bad training key fails now, not after the recording
    load_train_config(Path(o.train_config or config_file("demo.yaml")),
                      ["dataset=<recorded>", *train])
    return o, train


class Stages:
    """OUT/stages.json: settings and results of the finished stages, written atomically."""

    def __init__(self, out: Path) -> None:
        self.path = out / "stages.json"
        self.done: dict[str, Any] = {}
        if self.path.is_file():
            try:
                self.done = json.loads(self.path.read_text())
            except ValueError:
                raise UserError(f"{self.path}: not valid JSON (delete it to start the demo "
                                f"again)") from None
        self.changed = False  # once a stage runs, every later stage runs too

    def finished(self, name: str, settings: dict[str, Any]) -> dict[str, Any] | None:
        entry = self.done.get(name)
        if self.changed or entry is None or entry.get("settings") != settings:
            self.changed = True
            self.done = {k: v for k, v in self.done.items()
                         if STAGES.index(k) < STAGES.index(name)}
            self._write()
            return None
        return entry

    def finish(self, name: str, settings: dict[str, Any], seconds: float, **result: Any
               ) -> None:
        self.done[name] = {"settings": settings, "seconds": round(seconds, 1), **result}
        self._write()

    def _write(self) -> None:
        write_text_atomic(self.path, json.dumps(self.done, indent=1))


def _command(*argv: str) -> None:
    """Run one `mberil` subcommand in this process, after printing it."""
    from mberil_ros.cli import main

    print("\n$ mberil " + " ".join(argv), flush=True)
    code = main(list(argv))
    if code == 130:
        raise KeyboardInterrupt
    if code != 0:
        raise UserError(f"demo: `mberil {argv[0]}` failed (exit {code}); see above")


def _fresh(path: Path) -> None:
    """Remove what an unfinished stage left at ``path`` (always inside the demo folder)."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def run(args: argparse.Namespace) -> int:
    o, train_overrides = options(args)
    out = Path(o.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not (
            out / "stages.json").is_file():
        # stages replace their outputs: never inside a folder the demo did not make
        raise UserError(f"{out}: exists and is not a demo folder (no stages.json); choose "
                        f"another -o/--output")
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out)
    has_ros = importlib.util.find_spec("rclpy") is not None
    bag, dataset, runs = out / "bags" / "demos", out / "dataset", out / "runs"
    run_dir, eval_json = runs / RUN_NAME, out / "eval.json"
    logs = out / "logs"
    started = time.monotonic()

    def stage(name: str, settings: dict[str, Any], body: Any) -> dict[str, Any]:
        entry = stages.finished(name, settings)
        if entry is not None:
            print(f"\n[{name}] done before ({entry['seconds']:.0f} s), kept: {settings}")
            return entry
        print(f"\n[{name}] {settings}", flush=True)
        t0 = time.monotonic()
        result = body() or {}
        stages.finish(name, settings, time.monotonic() - t0, **result)
        return stages.done[name]

    def record() -> dict[str, Any]:
        _fresh(bag)
        if not has_ros:
            return {"skipped": NO_ROS}
        bag.parent.mkdir(parents=True, exist_ok=True)
        _command("record", "-o", str(bag), "--episodes", str(o.expert_episodes),
                 "--suboptimal", str(o.suboptimal_episodes), "--seed", str(o.seed),
                 "--real-time-factor", "1000", "--settle-ticks", str(DEMO_SETTLE_TICKS),
                 "--log-dir", str(logs / "record"))
        return {}

    def convert() -> dict[str, Any]:
        from mberil_ros.data.dataset import Dataset

        if has_ros:
            _command("convert", str(bag), "-o", str(dataset), "--overwrite", "--no-progress")
        else:  # the same episodes and files, straight from the in-process simulator
            _command("sim-dataset", str(dataset), "--expert", str(o.expert_episodes),
                     "--suboptimal", str(o.suboptimal_episodes), "--expert-fraction", "0",
                     "--seed", str(o.seed), "--settle-ticks", str(DEMO_SETTLE_TICKS),
                     "--overwrite")
        ds = Dataset(dataset)
        labels = [m["label"] for m in ds.episodes]
        return {"episodes": len(labels), "expert": labels.count("expert"),
                "frames": int(sum(m["length"] for m in ds.episodes)), "fps": ds.fps}

    train_config = o.train_config or str(config_file("demo.yaml"))

    def train() -> dict[str, Any]:
        overrides = [f"dataset={dataset}", f"output_dir={runs}", f"name={RUN_NAME}",
                     *train_overrides]
        # a run interrupted with the same settings continues; any other is started again
        started = runs / f".{RUN_NAME}.settings.json"
        same = started.is_file() and started.read_text() == json.dumps(train_settings)
        if same and (run_dir / "checkpoints" / "last").exists():
            _command("train", "--resume", str(run_dir))
        else:
            _fresh(run_dir)
            runs.mkdir(parents=True, exist_ok=True)
            started.write_text(json.dumps(train_settings))
            _command("train", "--config", train_config, *overrides)
        return {"run": str(run_dir)}

    def evaluate() -> dict[str, Any]:
        _fresh(out / "plots" / "trajectories")
        _command("eval", str(run_dir / "checkpoints" / "last"), "--suite", "all",
                 "--episodes", str(o.eval_episodes), "--baselines", "--workers",
                 str(o.workers or os.cpu_count() or 1), "--json", str(eval_json),
                 "--plot", str(out / "plots" / "trajectories"))
        return {}

    def deploy() -> dict[str, Any]:
        if o.ros_episodes == 0:
            return {"skipped": "ros_episodes=0"}
        if not has_ros:
            return {"skipped": NO_ROS}
        from mberil_ros.deploy import DeployOptions, drive, table

        checkpoint = run_dir / "checkpoints" / "last"
        print(f"\n$ mberil deploy {checkpoint} --episodes {o.ros_episodes} "
              f"--real-time-factor 5 --log-dir {logs / 'deploy'}", flush=True)
        rows, report, interrupted = drive(
            checkpoint, DeployOptions(episodes=o.ros_episodes, real_time_factor=5.0),
            logs / "deploy")
        if interrupted:
            raise KeyboardInterrupt
        print(table(rows))
        return {"episodes": rows, "policy_node": report.strip().splitlines()}

    settings = {"expert_episodes": o.expert_episodes,
                "suboptimal_episodes": o.suboptimal_episodes, "seed": o.seed}
    stage("record", {**settings, "ros": has_ros}, record)
    info = stage("convert", {}, convert)
    train_settings = {"config": train_config, "overrides": train_overrides}
    stage("train", train_settings, train)
    stage("eval", {"episodes": o.eval_episodes}, evaluate)
    ros = stage("deploy", {"episodes": o.ros_episodes}, deploy)

    # the report is cheap and reads every stage's result: always written again
    from mberil_ros.demo_report import summary_text, write_report

    t0 = time.monotonic()
    report = write_report(out, info, run_dir, eval_json, ros, stages.done)
    stages.finish("report", {}, time.monotonic() - t0)
    print("\n" + summary_text(report))
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s; everything is in {out}/")
    return 0

