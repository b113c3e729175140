"""Record demonstrations: MuJoCo sim_node + demonstrator_node + recorder_node.

    ros2 launch mberil_ros record.launch.py output:=demos/run1 expert_episodes:=20 \
        suboptimal_episodes:=10 suite:=train seed:=0

The recording ends when the demonstrator has run all its episodes: its exit shuts the
launch down, and the recorder closes the bag on the way out.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ARGUMENTS = {
    "output": ("demos/recording", "bag folder to write (must not exist)"),
    "storage": ("mcap", "rosbag2 storage: mcap | sqlite3"),
    "suite": ("train", "task suite: train | heldout_init | heldout_obstacles"),
    "seed": ("0", "seed of the first episode (later episodes use seed+1, seed+2, ...)"),
    "arm": ("right", "right | left | both"),
    "expert_episodes": ("10", "episodes by the scripted expert (label: expert)"),
    "suboptimal_episodes": ("5", "episodes by the sub-optimal demonstrators (label: suboptimal)"),
    "real_time_factor": ("10.0", "upper bound on sim speed (lockstep with the demonstrator)"),
}


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ]
    cfg = {name: LaunchConfiguration(name) for name in ARGUMENTS}
    sim = Node(
        package="mberil_ros",
        executable="sim_node",
        name="sim_node",
        output="screen",
        parameters=[{
            "suite": cfg["suite"],
            "seed": cfg["seed"],
            "arm": cfg["arm"],
            "real_time_factor": cfg["real_time_factor"],
            "auto_start": False,  # episodes start when the demonstrator resets the sim
            "lockstep": True,  # each recorded state is paired with the command computed from it
        }],
    )
    recorder = Node(
        package="mberil_ros",
        executable="recorder_node",
        name="recorder_node",
        output="screen",
        parameters=[{"output": cfg["output"], "storage": cfg["storage"], "use_sim_time": True}],
    )
    demonstrator = Node(
        package="mberil_ros",
        executable="demonstrator_node",
        name="demonstrator_node",
        output="screen",
        parameters=[{
            "suite": cfg["suite"],
            "seed": cfg["seed"],
            "arm": cfg["arm"],
            "expert_episodes": cfg["expert_episodes"],
            "suboptimal_episodes": cfg["suboptimal_episodes"],
            "use_sim_time": True,
            "min_command_subscribers": 2,  # the sim and the recorder: no command is lost
        }],
    )
    stop_when_done = RegisterEventHandler(
        OnProcessExit(target_action=demonstrator,
                      on_exit=[EmitEvent(event=Shutdown(reason="demonstrations done"))])
    )
    return LaunchDescription([*args, sim, recorder, demonstrator, stop_when_done])
