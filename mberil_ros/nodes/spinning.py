"""Run a node until Ctrl-C / SIGTERM, stopping between callbacks, never inside one.

rclpy's own signal handling shuts the context down from under a running executor; a message
being taken at that instant raises from inside rclpy. The nodes here instead init rclpy
without signal handlers, note the signal in a flag and leave the spin loop between callbacks,
so their clean-up (closing a bag, a final checkpoint) always runs on a live context.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from mberil_ros.settings import defaults, descriptions

_stop = threading.Event()  # set on SIGINT/TERM once init() ran


class Stopped(Exception):
    """A stop signal arrived while a node was still starting up (see wait_until)."""


def init(args: list[str] | None) -> threading.Event:
    """rclpy.init without rclpy's signal handlers; the returned event is set on SIGINT/TERM."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    _stop.clear()

    def handler(signum, frame) -> None:
        _stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return _stop


def wait_until(condition: Callable[[], bool], timeout: float, period: float = 0.01) -> bool:
    """Poll ``condition`` (it must not need spinning: graph queries) for up to ``timeout`` s;
    a stop signal meanwhile raises Stopped, so a node waiting for its peers at start-up
    still ends at once on Ctrl-C (a recording stops when one of its nodes dies)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if _stop.is_set():
            raise Stopped
        if time.monotonic() > deadline:
            return False
        time.sleep(period)
    return True


def spin_until(node: Node, stop: threading.Event,
               done: Callable[[], bool] = lambda: False) -> None:
    """Process callbacks until a stop signal arrives or ``done()`` is true."""
    while not stop.is_set() and not done() and rclpy.ok(context=node.context):
        rclpy.spin_once(node, timeout_sec=0.05)


def run(make_node: Callable[[], Node], name: str, args: list[str] | None, *,
        done: Callable[[Any], bool] = lambda node: False,
        finish: Callable[[Any, bool], int] = lambda node, stopped: 0,
        cleanup: Callable[[Any], int | None] = lambda node: None) -> int:
    """Every node's main(): build it, spin until a stop signal or ``done(node)``, then
    ``finish(node, stopped)`` gives the exit code; ``cleanup(node)`` always runs on a live
    context (it may return a non-zero code of its own). Bad input (UserError) exits 2."""
    from mberil_ros.errors import UserError

    stop = init(args)
    node = None
    code = 0
    try:
        node = make_node()
        spin_until(node, stop, lambda: done(node))
        code = finish(node, stop.is_set())
    except UserError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        code = 2
    except Stopped:
        code = 130
    finally:
        if node is not None:
            code = code or cleanup(node) or 0
            node.destroy_node()
        rclpy.try_shutdown()
    return code


def declare_parameters(node: Node, params: type) -> dict[str, Any]:
    """Declare every parameter of a node's dataclass (defaults and descriptions in one place);
    return their values."""
    text = descriptions(params)
    for name, default in defaults(params).items():
        node.declare_parameter(name, default, ParameterDescriptor(description=text[name]))
    return {name: node.get_parameter(name).value for name in text}
