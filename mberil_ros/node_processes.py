"""Node processes a command runs together (`mberil record`): how one ended, in words, and
stopping them all at once.

A recording is only worth anything while all its nodes run: a sim and demonstrator going on
without the recorder (or the other way round) only burn time, so the command watches every
process and stops the rest as soon as one ends unexpectedly.
"""

from __future__ import annotations

import signal
import subprocess
import time


def exit_cause(code: int) -> str:
    """'was killed by SIGKILL' / 'exited with code 2', for a Popen returncode."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    """SIGINT (Ctrl-C) and wait; kill if it hangs. Returns the exit code."""
    return stop_all({"": proc}, timeout)[""]


def stop_all(procs: dict[str, subprocess.Popen], timeout: float = 20.0) -> dict[str, int]:
    """SIGINT to every process still running, all at once (each closes what it writes), then
    wait for them together; kill those still running after ``timeout`` s. name -> exit code."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for proc in procs.values():
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {name: proc.returncode for name, proc in procs.items()}


def ended(procs: dict[str, subprocess.Popen], may_finish: str) -> tuple[str, int] | None:
    """The first process that has ended unexpectedly: any of them, except ``may_finish``
    exiting with code 0 (the one whose end is the end of the job)."""
    for name, proc in procs.items():
        code = proc.poll()
        if code is not None and not (name == may_finish and code == 0):
            return name, code
    return None
