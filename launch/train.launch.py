"""Train from a config with progress on /diagnostics.

    ros2 launch mberil_ros train.launch.py overrides:="dataset=datasets/run1 seed=1"
    ros2 launch mberil_ros train.launch.py config:=config/train_bc.yaml \
        overrides:="dataset=datasets/run1 algo.network.backbone=mlp"
    ros2 launch mberil_ros train.launch.py resume:=runs/offline_mberil-mamba-20261126-101500
    ros2 launch mberil_ros train.launch.py fork:=runs/A/checkpoints/warmstart \
        overrides:="name=A-anchor1 algo.lambda_nll=1"

The launch ends when training finishes; Ctrl-C stops training after a final checkpoint.
"""

import shlex

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    OpaqueFunction,
)
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mberil_ros.launch_support import ends_with
from mberil_ros.nodes.trainer_node import TrainerNodeParameters
from mberil_ros.settings import defaults, descriptions


def _trainer(context):  # noqa: ANN001, ANN202 - launch's OpaqueFunction protocol
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    trainer = Node(
        package="mberil_ros",
        executable="trainer_node",
        name="trainer_node",
        output="screen",
        emulate_tty=True,  # keep the progress output readable
        parameters=[{"config": value["config"], "resume": value["resume"],
                     "fork": value["fork"],
                     # a typed string list ([""] when empty: an empty list has no type)
                     "overrides": shlex.split(value["overrides"]) or [""]}],
    )
    return [trainer, *ends_with(trainer)]  # training over (or failed: non-zero)


# the node's parameters, with its defaults and descriptions (overrides: one string here)
ARGUMENTS = ("config", "resume", "fork", "overrides")


def generate_launch_description() -> LaunchDescription:
    text, default = descriptions(TrainerNodeParameters), defaults(TrainerNodeParameters)
    args = [DeclareLaunchArgument(
        name, default_value=" ".join(o for o in default[name] if o)
        if isinstance(default[name], list) else str(default[name]),
        description=text[name] + (" (space-separated)" if name == "overrides" else ""))
        for name in ARGUMENTS]
    return LaunchDescription([*args, OpaqueFunction(function=_trainer)])
