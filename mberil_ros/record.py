"""`mberil record`: run sim_node + demonstrator_node + recorder_node and write a rosbag2.

The same three nodes as launch/record.launch.py, started as plain processes so recording works
without `ros2 launch`. The command itself never imports rclpy (only mberil_ros/nodes/ does,
docs/architecture.md): it only starts, watches and stops the node processes. Ctrl-C stops
the demonstrations early and still leaves a readable bag. A node that dies stops the whole
recording at once (node_processes.py), with the cause and its log named in one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mberil_ros.data.bag_settings import STORAGES, BagSplitting
from mberil_ros.errors import UserError
from mberil_ros.node_processes import ended, exit_cause, stop_all
from mberil_ros.node_processes import stop_process as stop_process  # used by deploy and tests
from mberil_ros.settings import (
    command_line,
    defaults,
    descriptions,
    from_mapping,
    read_yaml,
    setting,
    setting_of,
)
from mberil_ros.sim.spaces import SETTLE_TICKS
from mberil_ros.sim.suites import SUITE_CHOICES


@dataclass
class RecordOptions:
    """`mberil record` options, `--config` YAML keys and record.launch.py arguments."""

    output: str = setting("", "bag folder to write (must not exist; required)")
    expert_episodes: int = setting(10, "episodes by the scripted expert (label: expert)")
    suboptimal_episodes: int = setting(5, "episodes by the sub-optimal demonstrators "
                                       "(label: suboptimal)")
    suite: str = setting("train", "task suite: " + SUITE_CHOICES)
    seed: int = setting(0, "seed of the first episode (later ones use seed+1, seed+2, ...)")
    arm: str = setting("right", "driven arm: right | left | both")
    storage: str = setting("mcap", "rosbag2 storage: mcap | sqlite3")
    real_time_factor: float = setting(10.0, "upper bound on sim speed relative to the wall "
                                      "clock; the sim runs in lockstep with the demonstrator")
    settle_ticks: int = setting(SETTLE_TICKS, "ticks a successful episode goes on after "
                                "reaching the target, the hand held there")
    max_bag_duration: float = setting_of(BagSplitting, "max_bag_duration")
    max_bag_size: int = setting_of(BagSplitting, "max_bag_size")


def node_parameters(o: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each node's parameters for a recording, from the options (values or, in the launch
    file, LaunchConfigurations): `mberil record` and record.launch.py start the same thing."""
    common = {"suite": o["suite"], "seed": o["seed"], "arm": o["arm"]}
    return {
        # episodes start when the demonstrator resets the sim; lockstep pairs each recorded
        # state with the command computed from it
        "sim_node": {**common, "real_time_factor": o["real_time_factor"],
                     "settle_ticks": o["settle_ticks"], "auto_start": False, "lockstep": True},
        "recorder_node": {"output": o["output"], "storage": o["storage"],
                          "max_bag_duration": o["max_bag_duration"],
                          "max_bag_size": o["max_bag_size"], "use_sim_time": True},
        "demonstrator_node": {**common, "expert_episodes": o["expert_episodes"],
                              "suboptimal_episodes": o["suboptimal_episodes"],
                              "use_sim_time": True,
                              "min_command_subscribers": 2,  # the sim and the recorder
                              "min_state_subscribers": 2},  # the demonstrator and the recorder
    }


PROGRESS_PREFIX = "[mberil-progress]"


# command-line flags whose name differs from the option they set
FLAGS = {"expert_episodes": "--episodes", "suboptimal_episodes": "--suboptimal"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML with any of the options below "
                        "(keys as in the option names: expert_episodes, real_time_factor, ...)")
    text = descriptions(RecordOptions)
    for name, default in defaults(RecordOptions).items():
        flags = ["-o", "--output"] if name == "output" else [
            FLAGS.get(name, "--" + name.replace("_", "-"))]
        shown = "" if default == "" else f" (default {default})"
        parser.add_argument(*flags, dest=name, type=type(default) if default != "" else str,
                            metavar=name.upper(), help=text[name] + shown)
    parser.add_argument("--log-dir", type=Path, help="where node logs go (default OUTPUT.logs)")
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help="options by name, as for `mberil train` (e.g. suite=heldout_init)")


def resolve_options(args: argparse.Namespace) -> dict:
    base = defaults(RecordOptions)
    if args.config is not None:
        base = dataclasses.asdict(from_mapping(RecordOptions, read_yaml(args.config),
                                               source=args.config))
    options = command_line(RecordOptions, args, "record", base)
    if not options["output"]:
        raise UserError("no output bag given (-o/--output or `output:` in --config)")
    if Path(options["output"]).exists():
        raise UserError(f"{options['output']}: output bag already exists")
    for key in ("expert_episodes", "suboptimal_episodes", "seed", "settle_ticks"):
        if not isinstance(options[key], int) or options[key] < 0:
            raise UserError(f"{key} must be a non-negative integer, got {options[key]!r}")
    if options["expert_episodes"] + options["suboptimal_episodes"] == 0:
        raise UserError("nothing to record: --episodes and --suboptimal are both 0")
    if not options["real_time_factor"] > 0:
        raise UserError(f"real_time_factor must be > 0, got {options['real_time_factor']}")
    if options["storage"] not in STORAGES:
        raise UserError(f"storage must be one of {list(STORAGES)}, got {options['storage']!r}")
    for key in ("max_bag_duration", "max_bag_size"):
        if not isinstance(options[key], int | float) or not options[key] >= 0:
            raise UserError(f"{key} must be >= 0 (0: no split), got {options[key]!r}")
    # The suite and arm are validated by the sim itself; check early for a clean error.
    from mberil_ros.sim.spaces import ARMS
    from mberil_ros.sim.suites import ALL_SUITES

    if options["suite"] not in ALL_SUITES:
        raise UserError(f"unknown suite {options['suite']!r}; known: {sorted(ALL_SUITES)}")
    if options["arm"] not in ARMS:
        raise UserError(f"unknown arm {options['arm']!r}; known: {list(ARMS)}")
    return options


def node_command(module: str, params: dict[str, object]) -> list[str]:
    command = [sys.executable, "-m", f"mberil_ros.nodes.{module}", "--ros-args"]
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        command += ["-p", f"{key}:={text}"]
    return command


def run(args: argparse.Namespace) -> int:
    options = resolve_options(args)
    output = Path(options["output"])
    log_dir = args.log_dir or output.with_name(output.name + ".logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    total = options["expert_episodes"] + options["suboptimal_episodes"]
    params = node_parameters({**options, "output": str(output)})

    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, params: dict, **popen) -> subprocess.Popen:
        log = (log_dir / f"{name}.log").open("w")
        popen.setdefault("stdout", log)
        proc = subprocess.Popen(node_command(name, params), stderr=log, env=env, **popen)
        procs[name] = proc
        return proc

    start("sim_node", params["sim_node"])
    start("recorder_node", params["recorder_node"])
    demo = start("demonstrator_node", params["demonstrator_node"], stdout=subprocess.PIPE,
                 text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(demo.stdout, lines), daemon=True).start()
    interrupted, failure, done = False, None, 0
    try:
        with tqdm(total=total, desc="recording", unit="episode") as bar:
            drained = False
            # the demonstrator's end (code 0, all its output read) is the end of the job;
            # any other node ending, or the demonstrator failing, ends it at once
            while not (drained and demo.poll() == 0):
                try:
                    line = lines.get(timeout=0.1)
                except queue.Empty:
                    line = ""
                if line is None:
                    drained = True
                elif line.startswith(PROGRESS_PREFIX):
                    bar.update(1)
                    bar.set_postfix_str(line[len(PROGRESS_PREFIX):].strip())
                elif line:
                    with (log_dir / "demonstrator_node.log").open("a") as log:
                        log.write(line)
                failure = ended(procs, may_finish="demonstrator_node")
                if failure is not None:
                    break
            done = bar.n
    except KeyboardInterrupt:
        interrupted = True
    finally:
        codes = stop_all(procs)
    if failure is not None:
        raise UserError(_failure_text(failure, codes, done, total, output, log_dir))
    if codes["recorder_node"] != 0:
        raise UserError(f"recorder_node {exit_cause(codes['recorder_node'])} while closing the "
                        f"bag; log: {log_dir / 'recorder_node.log'}")
    print(f"wrote {output} ({'interrupted, ' if interrupted else ''}logs in {log_dir})")
    return 130 if interrupted else 0


def _read_lines(stream, lines: queue.Queue) -> None:  # noqa: ANN001 - a text pipe
    for line in stream:
        lines.put(line)
    lines.put(None)


def _failure_text(failure: tuple[str, int], codes: dict[str, int], done: int, total: int,
                  output: Path, log_dir: Path) -> str:
    name, code = failure
    text = (f"{name} {exit_cause(code)} after {done}/{total} episodes; the recording was "
            f"stopped; log: {log_dir / (name + '.log')}")
    if codes["recorder_node"] == 0:
        return f"{text}; {output} holds the episodes recorded so far"
    # the recorder did not close the bag: what it flushed is still there
    return f"{text}; `mberil convert {output}` reads back what was written"
