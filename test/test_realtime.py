"""Real-time scheduling of the control thread (mberil_ros/nodes/realtime.py): what it reports
must be what the kernel did. Each check runs in a child process, so pytest itself never runs
under SCHED_FIFO or with locked memory."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mberil_ros.nodes import realtime

CHILD = """
import os, sys
from mberil_ros.nodes import realtime
applied, msg = realtime.{call}
print(applied, msg)
print("CHECK", {check})
"""


def _child(call: str, check: str) -> tuple[bool, str, str]:
    out = subprocess.run([sys.executable, "-c", CHILD.format(call=call, check=check)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    report, check_line = out.strip().splitlines()[-2:]
    applied, msg = report.split(" ", 1)
    return applied == "True", msg, check_line.removeprefix("CHECK ")


def test_thread_priority_reports_what_the_scheduler_did():
    applied, msg, policy = _child("set_thread_priority(10)", "os.sched_getscheduler(0)")
    if not applied:  # no privilege here: the thread must still be normal
        assert int(policy) == 0 and "not applied" in msg and "CAP_SYS_NICE" in msg
    else:
        assert int(policy) == 1 and "priority 10" in msg  # SCHED_FIFO


def test_lock_memory_reports_what_the_kernel_did():
    vm_lck = "[l for l in open('/proc/self/status') if l.startswith('VmLck')][0]"
    applied, msg, locked = _child("lock_memory()", vm_lck)
    kb = int(locked.split()[1])
    if not applied:
        assert kb == 0 and "not applied" in msg
    else:
        assert kb > 0


@pytest.mark.parametrize("priority", [0, 100, -1])
def test_thread_priority_out_of_range_is_refused(priority):
    with pytest.raises(ValueError, match="thread_priority must be in 1..99"):
        realtime.set_thread_priority(priority)
