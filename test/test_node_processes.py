"""How `mberil record` watches and stops its node processes (mberil_ros/node_processes.py),
with plain Python processes standing in for the nodes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from mberil_ros.node_processes import ended, exit_cause, stop_all

# each prints "ready" once its signal handling is in place, so a test never signals a
# process still starting up; the sleeper installs Python's Ctrl-C handler itself, as rclpy
# does in a node (a suite started in the background inherits SIGINT ignored, and Python then
# leaves it ignored)
SLEEPER = ("import signal, time\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
           "print('ready', flush=True)\ntime.sleep(120)")
# stands for a node that ignores Ctrl-C (hung in a callback)
STUBBORN = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "print('ready', flush=True)\ntime.sleep(120)")


def start(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def ready(*procs: subprocess.Popen) -> None:
    for p in procs:
        assert p.stdout.readline().strip() == "ready"


def test_exit_causes_in_words():
    assert exit_cause(-9) == "was killed by SIGKILL"
    assert exit_cause(-15) == "was killed by SIGTERM"
    assert exit_cause(2) == "exited with code 2"
    assert exit_cause(0) == "exited with code 0"


def test_any_node_ending_is_noticed_except_the_one_whose_end_is_the_job_s():
    procs = {"sim_node": start(SLEEPER), "recorder_node": start(SLEEPER),
             "demonstrator_node": start("pass")}
    ready(procs["sim_node"], procs["recorder_node"])
    try:
        procs["demonstrator_node"].wait(timeout=60)
        assert ended(procs, may_finish="demonstrator_node") is None  # done, code 0
        procs["recorder_node"].send_signal(signal.SIGKILL)
        procs["recorder_node"].wait(timeout=60)
        assert ended(procs, may_finish="demonstrator_node") == ("recorder_node", -9)
        assert ended(procs, may_finish="recorder_node") == ("recorder_node", -9)
    finally:
        codes = stop_all(procs, timeout=30)
    assert codes["sim_node"] == -signal.SIGINT  # Ctrl-C ended it
    assert ended({"sim_node": procs["sim_node"]}, may_finish="x") == ("sim_node", -2)


def test_stop_all_signals_every_process_at_once_and_kills_one_that_ignores_it():
    procs = {f"node{i}": start(SLEEPER) for i in range(3)}
    procs["stubborn"] = start(STUBBORN)
    ready(*procs.values())
    started = time.monotonic()
    codes = stop_all(procs, timeout=3.0)
    took = time.monotonic() - started
    assert codes == {"node0": -2, "node1": -2, "node2": -2, "stubborn": -9}
    # waited once for all of them (3 s), not once per process
    assert 3.0 <= took < 3.0 * len(procs), took


def test_a_node_waiting_for_its_peers_at_start_up_ends_at_once_on_ctrl_c(tmp_path):
    """The demonstrator waits up to service_timeout for the sim; stopping the recording (a
    node died) must not wait that long."""
    from ros_helpers import require_rclpy, spin_until, start_node

    require_rclpy()
    import rclpy

    proc = start_node("mberil_ros.nodes.demonstrator_node", {"service_timeout": 120.0},
                      tmp_path / "demonstrator.log")
    rclpy.init()
    node = rclpy.create_node("watcher")
    try:  # the node exists, so it is waiting for a sim_node that never comes
        assert spin_until(node, lambda: "demonstrator_node" in node.get_node_names(),
                          timeout=60), (tmp_path / "demonstrator.log").read_text()
    finally:
        node.destroy_node()
        rclpy.shutdown()
    time.sleep(0.5)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130, (tmp_path / "demonstrator.log").read_text()
