"""`mberil record`: run sim_node + demonstrator_node + recorder_node and write a rosbag2.

The same three nodes as launch/record.launch.py, started as plain processes so recording works
without `ros2 launch`. The command itself never imports rclpy (only mberil_ros/nodes/ does,
docs/architecture.md): it only starts, watches and stops the node processes. Ctrl-C stops
the demonstrations early and still leaves a readable bag.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from tqdm import tqdm

from mberil_ros.errors import UserError

DEFAULTS = {
    "output": None,
    "episodes": 10,
    "suboptimal": 5,
    "suite": "train",
    "seed": 0,
    "arm": "right",
    "storage": "mcap",
    "real_time_factor": 10.0,
}
PROGRESS_PREFIX = "[mberil-progress]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", help="bag folder to write (must not exist)")
    parser.add_argument("--config", type=Path, help="YAML with any of the options below")
    parser.add_argument("--episodes", type=int, help="expert episodes (default 10)")
    parser.add_argument("--suboptimal", type=int, help="sub-optimal episodes (default 5)")
    parser.add_argument("--suite", help="train | heldout_init | heldout_obstacles")
    parser.add_argument("--seed", type=int, help="seed of the first episode (default 0)")
    parser.add_argument("--arm", help="right | left | both (default right)")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], help="default mcap")
    parser.add_argument("--real-time-factor", type=float, dest="real_time_factor",
                        help="upper bound on sim speed relative to wall clock; the sim "
                        "runs in lockstep with the demonstrator (default 10)")
    parser.add_argument("--log-dir", type=Path, help="where node logs go (default OUTPUT.logs)")


def resolve_options(args: argparse.Namespace) -> dict:
    options = dict(DEFAULTS)
    if args.config is not None:
        if not args.config.is_file():
            raise UserError(f"{args.config}: config file not found")
        loaded = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise UserError(f"{args.config}: expected a mapping of options")
        unknown = sorted(set(loaded) - set(DEFAULTS))
        if unknown:
            raise UserError(
                f"{args.config}: unknown option(s) {unknown}; known: {sorted(DEFAULTS)}"
            )
        options.update(loaded)
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            options[key] = value
    if not options["output"]:
        raise UserError("no output bag given (-o/--output or `output:` in --config)")
    if Path(options["output"]).exists():
        raise UserError(f"{options['output']}: output bag already exists")
    for key in ("episodes", "suboptimal", "seed"):
        if not isinstance(options[key], int) or options[key] < 0:
            raise UserError(f"{key} must be a non-negative integer, got {options[key]!r}")
    if options["episodes"] + options["suboptimal"] == 0:
        raise UserError("nothing to record: --episodes and --suboptimal are both 0")
    if not options["real_time_factor"] > 0:
        raise UserError(f"real_time_factor must be > 0, got {options['real_time_factor']}")
    # The suite and arm are validated by the sim itself; check early for a clean error.
    from mberil_ros.sim.spaces import ARMS
    from mberil_ros.sim.suites import SUITES

    if options["suite"] not in SUITES:
        raise UserError(f"unknown suite {options['suite']!r}; known: {sorted(SUITES)}")
    if options["arm"] not in ARMS:
        raise UserError(f"unknown arm {options['arm']!r}; known: {list(ARMS)}")
    return options


def _node_command(module: str, params: dict[str, object]) -> list[str]:
    command = [sys.executable, "-m", f"mberil_ros.nodes.{module}", "--ros-args"]
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        command += ["-p", f"{key}:={text}"]
    return command


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    """SIGINT (Ctrl-C) and wait; kill if it hangs. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def run(args: argparse.Namespace) -> int:
    options = resolve_options(args)
    output = Path(options["output"])
    log_dir = args.log_dir or output.with_name(output.name + ".logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    total = options["episodes"] + options["suboptimal"]
    common = {"suite": options["suite"], "seed": options["seed"], "arm": options["arm"]}

    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, params: dict, **popen) -> subprocess.Popen:
        log = (log_dir / f"{name}.log").open("w")
        popen.setdefault("stdout", log)
        proc = subprocess.Popen(_node_command(name, params), stderr=log, env=env, **popen)
        procs[name] = proc
        return proc

    start("sim_node", {**common, "real_time_factor": options["real_time_factor"],
                       "auto_start": False, "lockstep": True})
    start("recorder_node", {"output": str(output), "storage": options["storage"],
                            "use_sim_time": True})
    demo = start(
        "demonstrator_node",
        {**common, "expert_episodes": options["episodes"],
         "suboptimal_episodes": options["suboptimal"], "use_sim_time": True,
         "min_command_subscribers": 2},  # the sim and the recorder
        stdout=subprocess.PIPE, text=True,
    )
    interrupted = False
    try:
        with tqdm(total=total, desc="recording", unit="episode") as bar:
            for line in demo.stdout:
                if line.startswith(PROGRESS_PREFIX):
                    bar.update(1)
                    bar.set_postfix_str(line[len(PROGRESS_PREFIX):].strip())
                else:
                    (log_dir / "demonstrator_node.log").open("a").write(line)
        demo.wait()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        codes = {name: stop_process(proc) for name, proc in reversed(list(procs.items()))}
    if codes["recorder_node"] != 0:
        raise UserError(f"recorder_node failed (exit {codes['recorder_node']}); see {log_dir}")
    if not interrupted and codes["demonstrator_node"] != 0:
        raise UserError(f"demonstrator_node failed (exit {codes['demonstrator_node']}); "
                        f"see {log_dir}/demonstrator_node.log")
    print(f"wrote {output} ({'interrupted, ' if interrupted else ''}logs in {log_dir})")
    return 130 if interrupted else 0

