"""`mberil deploy CHECKPOINT`: a trained policy drives the MuJoCo NEXTAGE over ROS topics.

sim_node and policy_node run as separate processes and talk over DDS exactly as the policy
would talk to ros2_control on the robot (/joint_states in, the forward position controller
or a JointTrajectory out, on the sim's /clock), without `ros2 launch`. The policy starts
first; once it is active the sim runs ``--episodes`` back to back, and each end marker is
one row of the table printed at the end. Like `mberil record`, this command never imports
rclpy: it starts, watches and stops the node processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mberil_ros.errors import UserError
from mberil_ros.eval.closed_loop import evaluation_seeds
from mberil_ros.record import PROGRESS_PREFIX, node_command, stop_process
from mberil_ros.settings import command_line, defaults, descriptions, from_mapping, setting
from mberil_ros.sim.suites import ALL_SUITES, SUITE_CHOICES

READY = "policy_node: active"  # what policy_node prints once it streams


@dataclass
class DeployOptions:
    """`mberil deploy` options (flags or KEY=VALUE)."""

    episodes: int = setting(5, "episodes to run")
    suite: str = setting("train", "task suite: " + SUITE_CHOICES)
    seed: int = setting(0, "episode i runs evaluation layout SEED + i, the layout `mberil eval "
                        "--seed SEED` runs as its episode i (layout seed 1,000,000 + SEED + i, "
                        "above every dataset seed)")
    controller: str = setting("forward", "forward (Float64MultiArray) | trajectory "
                              "(JointTrajectory)")
    real_time_factor: float = setting(1.0, "sim speed relative to the wall clock (the policy "
                                      "follows the sim's /clock)")
    control_rate: float = setting(0.0, "policy Hz; 0: the rate it was trained at")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (or a run folder)")
    text = descriptions(DeployOptions)
    for name, default in defaults(DeployOptions).items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=type(default),
                            metavar=name.upper(), help=f"{text[name]} (default {default})")
    parser.add_argument("--log-dir", type=Path, help="node logs (default: a temp folder)")
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help="options by name, as for `mberil train`")


def run(args: argparse.Namespace) -> int:
    o = from_mapping(DeployOptions, command_line(DeployOptions, args, "deploy"), "deploy")
    validate(args.checkpoint, o)  # before a log folder is made for nothing
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="mberil-deploy-"))
    rows, report, interrupted = drive(args.checkpoint, o, log_dir)
    print(table(rows))
    print(report.strip() or "policy_node: no statistics (see its log)")
    print(f"logs in {log_dir}")
    return 130 if interrupted else 0


def drive(checkpoint: Path, o: DeployOptions, log_dir: Path) -> tuple[list[dict], str, bool]:
    """Run ``o.episodes`` with sim_node + policy_node: (one row per finished episode,
    policy_node's statistics lines, whether the user interrupted). A node that fails is a
    UserError naming its log."""
    arm = validate(checkpoint, o)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, params: dict) -> subprocess.Popen:
        proc = subprocess.Popen(node_command(name, params), stdout=subprocess.PIPE,
                                stderr=(log_dir / f"{name}.log").open("w"), text=True, env=env)
        procs[name] = proc
        return proc

    rows: list[dict] = []
    interrupted = False
    report = ""
    try:
        policy = start("policy_node", {
            "checkpoint": str(checkpoint), "autostart": True, "use_sim_time": True,
            "controller": o.controller, "control_rate": float(o.control_rate)})
        _wait_for(policy, READY, log_dir / "policy_node.log")
        sim = start("sim_node", sim_parameters(o, arm))
        with tqdm(total=o.episodes, desc="deploying", unit="episode") as bar:
            for line in sim.stdout:
                if line.startswith(PROGRESS_PREFIX):
                    rows.append(json.loads(line[len(PROGRESS_PREFIX):]))
                    bar.update(1)
                    bar.set_postfix_str(f"success {sum(r['success'] for r in rows)}/{len(rows)}")
        sim.wait()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        codes = {name: stop_process(proc) for name, proc in reversed(list(procs.items()))}
        if "policy_node" in procs:
            report = "".join(line for line in procs["policy_node"].stdout
                             if line.startswith("policy_node:"))
    if codes.get("policy_node", 0) not in (0, 130) and not interrupted:
        raise UserError(f"policy_node failed (exit {codes['policy_node']}); see "
                        f"{log_dir}/policy_node.log")
    if not interrupted and codes.get("sim_node", 0) != 0:
        raise UserError(f"sim_node failed (exit {codes['sim_node']}); see {log_dir}/sim_node.log")
    return rows, report, interrupted


def sim_parameters(o: DeployOptions, arm: str) -> dict:
    """sim_node's parameters: its seed is absolute (and advances by one per episode),
    deploy's an offset into the evaluation layouts, as eval's is."""
    return {"suite": o.suite, "seed": evaluation_seeds(o.seed, 1)[0], "arm": arm,
            "episodes": o.episodes, "auto_start": True,
            "real_time_factor": float(o.real_time_factor)}


def validate(checkpoint: Path, o: DeployOptions) -> str:
    """Bad options and a checkpoint without a policy as one-line UserErrors, before any
    node starts; returns the checkpoint's arm."""
    if o.episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {o.episodes}")
    if o.seed < 0:
        raise UserError(f"--seed must be >= 0, got {o.seed}")
    if not o.real_time_factor > 0:
        raise UserError(f"--real-time-factor must be > 0, got {o.real_time_factor}")
    if o.suite not in ALL_SUITES:
        raise UserError(f"--suite: unknown suite {o.suite!r} (choose from "
                        f"{', '.join(ALL_SUITES)})")
    from mberil_ros.algos.checkpoint import arm

    return arm(checkpoint)


def _wait_for(proc: subprocess.Popen, text: str, log: Path, timeout: float = 120.0) -> None:
    """Until ``proc`` prints ``text``; its exit before that is the user's error (a bad
    checkpoint: the node says why in its log)."""
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if line.startswith(text):
            return
        if time.monotonic() > deadline:
            break
    proc.wait(timeout=10)
    lines = [ln for ln in log.read_text().splitlines() if "error" in ln.lower()]
    raise UserError(f"policy_node did not start: {lines[-1] if lines else f'see {log}'}")


def table(rows: list[dict]) -> str:
    if not rows:
        return "no episode finished"
    lines = [f"{'episode':>7} {'seed':>8} {'success':>7} {'collision':>9} {'distance m':>10}"]
    for r in rows:
        lines.append(f"{r['episode']:>7} {r['seed']:>8} {str(r['success']):>7} "
                     f"{str(r.get('collision')):>9} {r.get('distance', float('nan')):>10.3f}")
    n = sum(bool(r["success"]) for r in rows)
    lines.append(f"success {n}/{len(rows)} ({n / len(rows):.0%}), collisions "
                 f"{sum(bool(r.get('collision')) for r in rows)}")
    return "\n".join(lines)

