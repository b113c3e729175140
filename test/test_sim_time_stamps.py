"""SimTimeStamper: messages get the sim time of the latest clock *sent* before them."""

from __future__ import annotations

from mberil_ros.data.sim_time_stamps import SimTimeStamper


def test_command_processed_after_next_clock_keeps_its_tick():
    s = SimTimeStamper()
    assert s.on_clock(source_ns=100, sim_ns=20_000_000) == []
    assert s.push("/joint_states", 110, b"state_k") == []  # held until a later clock
    # The command answering state_k was sent at 150, but arrives after the clock of tick k+1
    # (sent at 160): a "last received clock" stamp would say tick k+1.
    released = s.on_clock(source_ns=160, sim_ns=40_000_000)
    assert released == [("/joint_states", 20_000_000, b"state_k")]
    assert s.push("/commands", 150, b"cmd_k") == [("/commands", 20_000_000, b"cmd_k")]


def test_message_waits_for_a_later_clock_then_releases_in_send_order():
    s = SimTimeStamper()
    s.on_clock(100, 1_000)
    assert s.push("/b", 130, b"b") == []  # no clock sent after it yet: stamp not final
    assert s.push("/a", 120, b"a") == []
    assert s.on_clock(200, 2_000) == [("/a", 1_000, b"a"), ("/b", 1_000, b"b")]


def test_paused_clock_expires_and_flush_releases_everything():
    s = SimTimeStamper(max_hold_ns=50)
    s.on_clock(100, 7)
    s.push("/x", 120, b"x")
    s.push("/y", 400, b"y")
    assert s.expire(now_source_ns=200) == [("/x", 7, b"x")]
    assert s.flush() == [("/y", 7, b"y")]


def test_messages_before_any_clock_take_the_first_clock():
    s = SimTimeStamper()
    assert s.push("/x", 5, b"x") == []
    assert s.on_clock(10, 3_000) == [("/x", 3_000, b"x")]
