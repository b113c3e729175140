"""Real-time scheduling for a control loop, as ros2_control's controller_manager offers it
(its `thread_priority` and `lock_memory` parameters): SCHED_FIFO for the thread that spins
the executor, and all pages locked in RAM so a tick never waits for a page fault.

Both need privileges (root, CAP_SYS_NICE / CAP_IPC_LOCK, or rtprio / memlock limits in
/etc/security/limits.conf); without them the node runs on and says why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_MCL_CURRENT, _MCL_FUTURE = 1, 2


def set_thread_priority(priority: int) -> tuple[bool, str]:
    """SCHED_FIFO at ``priority`` (1-99) for the calling thread; (applied, what happened)."""
    if not 1 <= priority <= 99:
        raise ValueError(f"thread_priority must be in 1..99 (0: off), got {priority}")
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError) as exc:
        return False, (f"thread_priority {priority} not applied ({exc.strerror or exc}): "
                       "needs root, CAP_SYS_NICE or an rtprio limit; running with normal "
                       "scheduling")
    return True, f"control thread at SCHED_FIFO priority {priority}"


def lock_memory() -> tuple[bool, str]:
    """mlockall(MCL_CURRENT | MCL_FUTURE); (applied, what happened)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        err = ctypes.get_errno()
        return False, (f"lock_memory not applied ({os.strerror(err)}): needs root, "
                       "CAP_IPC_LOCK or a memlock limit")
    return True, "memory locked (mlockall)"
