"""Pieces every launch file of this package uses (imported only by launch/*.py, where the
`launch` package exists): typed parameters and a launch that ends with its nodes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def typed(value: Any, kind: type) -> Any:
    """A launch argument as a parameter of type ``kind``: launch_ros reads values as YAML, so
    `real_time_factor:=20` would be an integer and `output:=12345` a number otherwise."""
    from launch_ros.parameter_descriptions import ParameterValue

    return ParameterValue(value, value_type=kind)


def end_launch(event, context):  # noqa: ANN001, ANN201 - OnProcessExit's callback protocol
    """A node exited: fail the launch if it failed (non-zero status; the cause and the launch
    log in one line; the launch then stops every other node), else shut the launch down,
    once (a second Shutdown would stop launch_ros's adapter twice and fail a clean launch)."""
    from launch.actions import EmitEvent
    from launch.events import Shutdown
    from launch.logging import launch_config

    from mberil_ros.node_processes import exit_cause

    if event.returncode not in (0, -2, 130) and not context.is_shutdown:
        log = Path(launch_config.log_dir) / "launch.log"
        # launch numbers its processes (recorder_node-2): name the node as the user does
        name = re.sub(r"-\d+$", "", event.action.name)
        raise RuntimeError(f"{name} {exit_cause(event.returncode)}; the launch stops every "
                           f"node; log: {log}")
    return [] if context.is_shutdown else [EmitEvent(event=Shutdown(reason="a node exited"))]


def ends_with(*actions):  # noqa: ANN002, ANN201
    """Event handlers that end the launch when any of ``actions`` exits (see end_launch)."""
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessExit

    return [RegisterEventHandler(OnProcessExit(target_action=a, on_exit=end_launch))
            for a in actions]
