"""Record demonstrations: MuJoCo sim_node + demonstrator_node + recorder_node.

    ros2 launch mberil_ros record.launch.py output:=demos/run1 expert_episodes:=20 \
        suboptimal_episodes:=10 suite:=train seed:=0

The recording ends when the demonstrator has run all its episodes: its exit shuts the
launch down, and the recorder closes the bag on the way out. Any node dying stops the
whole recording at once, with the cause and the launch log (which holds every node's
output) in one line; what a killed recorder wrote is read back by `mberil convert`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mberil_ros.launch_support import ends_with, typed
from mberil_ros.record import RecordOptions, node_parameters
from mberil_ros.settings import defaults, descriptions


def generate_launch_description() -> LaunchDescription:
    # the arguments, their defaults and the nodes' parameters are those of `mberil record`
    text = descriptions(RecordOptions)
    args = [DeclareLaunchArgument(name, default_value=str(default), description=text[name])
            for name, default in defaults(RecordOptions).items()]
    kinds = {name: type(default) for name, default in defaults(RecordOptions).items()}
    params = node_parameters({name: typed(LaunchConfiguration(name), kinds[name])
                              for name in text})
    # output "both": on screen and in launch.log, the file a failure message points to
    sim = Node(package="mberil_ros", executable="sim_node", name="sim_node",
               output="both", parameters=[params["sim_node"]])
    recorder = Node(package="mberil_ros", executable="recorder_node", name="recorder_node",
                    output="both", parameters=[params["recorder_node"]])
    demonstrator = Node(package="mberil_ros", executable="demonstrator_node",
                        name="demonstrator_node", output="both",
                        parameters=[params["demonstrator_node"]])
    # the demonstrator exits when its episodes are done; any node failing ends it non-zero
    return LaunchDescription([*args, sim, recorder, demonstrator,
                              *ends_with(demonstrator, sim, recorder)])
