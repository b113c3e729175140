"""Helpers for tests that run real rclpy nodes in separate processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mberil_ros.record import stop_process

REPO = Path(__file__).resolve().parents[1]


def require_rclpy() -> None:
    pytest.importorskip("rclpy", reason="rclpy not installed (the `ros` extra)")


def start_node(module: str, params: dict[str, object], log: Path) -> subprocess.Popen:
    """Start ``python -m module --ros-args -p k:=v ...`` with this test run's DDS settings."""
    args = [sys.executable, "-m", module, "--ros-args"]
    for key, value in params.items():
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, list | tuple):
            value = "[" + ",".join(f"'{v}'" if isinstance(v, str) else str(v) for v in value) + "]"
        args += ["-p", f"{key}:={value}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            cwd=REPO)


stop_node = stop_process  # the same Ctrl-C-then-wait that `mberil record` uses


def child_process(parent: int, module: str) -> int | None:
    """Pid of the child of ``parent`` that runs ``python -m module`` (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # it exited meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
        if ppid == parent and module.encode() in command:
            return int(entry.name)
    return None


def spin_until(node, condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    import rclpy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        rclpy.spin_once(node, timeout_sec=0.05)
    return condition()
