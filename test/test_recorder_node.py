"""recorder_node in its own process, fed over DDS on loopback, stopped with Ctrl-C."""

from __future__ import annotations

import time

import pytest
from ros_helpers import require_rclpy, spin_until, start_node, stop_node

require_rclpy()

import rclpy  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402

TYPESTORE = get_typestore(Stores.ROS2_KILTED)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_records_raw_messages_and_closes_on_ctrl_c(tmp_path, storage):
    bag = tmp_path / "bag"
    proc = start_node(
        "mberil_ros.nodes.recorder_node",
        {"output": str(bag), "storage": storage, "topics": ["/joint_states", "/task/episode"]},
        tmp_path / "recorder.log",
    )
    rclpy.init()
    node = rclpy.create_node("recorder_test_publisher")
    try:
        joints = node.create_publisher(JointState, "/joint_states", 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        episode = node.create_publisher(String, "/task/episode", latched)
        episode.publish(String(data='{"event": "start", "episode": 0}'))
        # Wait until the recorder has subscribed to both topics.
        def subscribed() -> bool:
            return joints.get_subscription_count() > 0 and episode.get_subscription_count() > 0

        assert spin_until(node, subscribed), (tmp_path / "recorder.log").read_text()
        time.sleep(0.5)
        sent = []
        for i in range(20):
            msg = JointState(name=["RARM_JOINT1", "RARM_JOINT0"], position=[0.1 * i, -0.1 * i],
                             velocity=[1.0, 2.0])
            joints.publish(msg)
            sent.append(list(msg.position))
            rclpy.spin_once(node, timeout_sec=0.01)
        time.sleep(1.0)
    finally:
        node.destroy_node()
        rclpy.shutdown()
    assert stop_node(proc) == 0, (tmp_path / "recorder.log").read_text()

    with AnyReader([bag], default_typestore=TYPESTORE) as reader:
        connections = {c.topic: c for c in reader.connections}
        assert set(connections) == {"/joint_states", "/task/episode"}
        assert connections["/joint_states"].msgdef.data  # definition stored
        assert connections["/joint_states"].digest.startswith("RIHS01_")
        got = [
            list(reader.deserialize(raw, c.msgtype).position)
            for c, _, raw in reader.messages(connections=[connections["/joint_states"]])
        ]
        markers = [
            reader.deserialize(raw, c.msgtype).data
            for c, _, raw in reader.messages(connections=[connections["/task/episode"]])
        ]
    assert len(got) == len(sent)
    for received, published in zip(got, sent, strict=True):
        assert received == pytest.approx(published)
    assert markers == ['{"event": "start", "episode": 0}']  # latched message not missed


def test_missing_output_parameter_fails_cleanly(tmp_path):
    proc = start_node("mberil_ros.nodes.recorder_node", {}, tmp_path / "log")
    assert proc.wait(timeout=30) == 2
    assert "parameter 'output'" in (tmp_path / "log").read_text()
