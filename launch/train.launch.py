"""Train from a config with progress on /diagnostics.

    ros2 launch mberil_ros train.launch.py config:=config/train.yaml
    ros2 launch mberil_ros train.launch.py resume:=runs/offline_mberil-mamba-20261126-101500

The launch ends when training finishes; Ctrl-C stops training after a final checkpoint.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument("config", default_value="",
                              description="training YAML (empty: the package's train.yaml)"),
        DeclareLaunchArgument("resume", default_value="",
                              description="run folder to resume (its config.yaml is used)"),
    ]
    trainer = Node(
        package="mberil_ros",
        executable="trainer_node",
        name="trainer_node",
        output="screen",
        emulate_tty=True,  # keep the progress output readable
        parameters=[{"config": LaunchConfiguration("config"),
                     "resume": LaunchConfiguration("resume")}],
    )
    done = RegisterEventHandler(OnProcessExit(
        target_action=trainer, on_exit=[EmitEvent(event=Shutdown(reason="training ended"))]))
    return LaunchDescription([*args, trainer, done])
