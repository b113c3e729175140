"""Stream a trained policy to the NEXTAGE through ros2_control, in a simulator or for real.

    ros2 launch mberil_ros deploy.launch.py sim:=true checkpoint:=runs/bc-mlp/checkpoints/best
    ros2 launch mberil_ros deploy.launch.py sim:=true simulator:=mujoco checkpoint:=CKPT
    ros2 launch mberil_ros deploy.launch.py sim:=false hardware:=real \
        real_plugin:=my_lab/NextageSystem checkpoint:=CKPT

sim:=true simulator:=gazebo (the default simulator): gz sim with worlds/table.sdf, the robot
spawned from the xacro (gz_ros2_control), the /clock bridge, joint_state_broadcaster and
the forward position controller (or the trajectory controller with controller:=trajectory).
sim:=true simulator:=mujoco: the project's sim_node behind the same topics. sim:=false:
ros2_control_node with the URDF's hardware (mock or the lab's plugin). Every variant runs
robot_state_publisher and policy_node, configured and then activated by this launch file
(lifecycle events); a node that dies ends the launch.
"""

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    IncludeLaunchDescription,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessStart
from launch.events import matches_action
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import (
    Command,
    FindExecutable,
    LaunchConfiguration,
    PathJoinSubstitution,
    PythonExpression,
)
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from mberil_ros.launch_support import ends_with

ARGUMENTS = {
    "checkpoint": ("", "checkpoint folder (or run folder) of the policy; required"),
    "sim": ("true", "true: a simulator; false: ros2_control_node with the URDF's hardware"),
    "simulator": ("gazebo", "gazebo | mujoco (sim:=true)"),
    "hardware": ("mock", "sim:=false: mock (mock_components) | real (real_plugin)"),
    "real_plugin": ("nextage_hardware/NextageSystem", "the lab's ros2_control plugin"),
    "controller": ("forward", "forward (forward_position_controller) | trajectory "
                   "(joint_trajectory_controller)"),
    "control_rate": ("0.0", "policy Hz; 0: the rate it was trained at"),
    "suite": ("train", "mujoco: task suite of the episodes"),
    "seed": ("1000000", "mujoco: layout seed of the first episode"),
    "layouts_file": ("", "mujoco: YAML of user layouts (docs/task.md)"),
    "episodes": ("0", "mujoco: episodes back to back, then end (0: one, then keep holding)"),
    "rviz": ("false", "start RViz"),
}


def _refused(context):  # noqa: ANN001, ANN202
    raise RuntimeError("policy_node refused to configure (its log says why)")


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()]
    cfg = {name: LaunchConfiguration(name) for name in ARGUMENTS}
    share = FindPackageShare("mberil_ros")
    sim = ["'", cfg["sim"], "'.lower() in ('true', '1')"]  # a Python test, as launch reads it
    real = IfCondition(PythonExpression(["not ", *sim]))
    gazebo = IfCondition(PythonExpression([*sim, " and '", cfg["simulator"], "' == 'gazebo'"]))
    mujoco = IfCondition(PythonExpression([*sim, " and '", cfg["simulator"], "' == 'mujoco'"]))
    ros2_control = IfCondition(PythonExpression(["not (", *sim, " and '", cfg["simulator"],
                                                 "' == 'mujoco')"]))
    hardware = PythonExpression(["'gazebo' if ", *sim, " else '", cfg["hardware"], "'"])
    controllers = PathJoinSubstitution([share, "config", "ros2_controllers.yaml"])
    description = ParameterValue(Command([
        FindExecutable(name="xacro"), " ", PathJoinSubstitution([share, "urdf",
                                                                  "nextage.urdf.xacro"]),
        " hardware:=", hardware, " real_plugin:=", cfg["real_plugin"],
        " controllers_file:=", controllers, " attach_to_world:=",
        PythonExpression(["'true' if ", *sim, " else 'false'"])]), value_type=str)
    use_sim_time = PythonExpression(sim)  # gazebo and mujoco both own /clock

    state_publisher = Node(
        package="robot_state_publisher", executable="robot_state_publisher", output="screen",
        parameters=[{"robot_description": description,
                     "use_sim_time": ParameterValue(use_sim_time, value_type=bool)}],
        condition=ros2_control)
    # the MuJoCo sim publishes /joint_states itself, without ros2_control
    mujoco_sim = Node(
        package="mberil_ros", executable="sim_node", name="sim_node", output="screen",
        condition=mujoco,
        parameters=[{"suite": cfg["suite"], "seed": ParameterValue(cfg["seed"], value_type=int),
                     "layouts_file": cfg["layouts_file"],
                     "episodes": ParameterValue(cfg["episodes"], value_type=int),
                     "auto_start": True, "real_time_factor": 1.0}])
    gz = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare("ros_gz_sim"), "launch", "gz_sim.launch.py"])),
        launch_arguments={"gz_args": ["-r ", PathJoinSubstitution([share, "worlds",
                                                                    "table.sdf"])]}.items(),
        condition=gazebo)
    spawn = Node(package="ros_gz_sim", executable="create", output="screen", condition=gazebo,
                 arguments=["-topic", "robot_description", "-name", "nextage", "-z", "0.97"])
    clock_bridge = Node(package="ros_gz_bridge", executable="parameter_bridge", output="screen",
                        condition=gazebo,
                        arguments=["/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock"])
    control_node = Node(package="controller_manager", executable="ros2_control_node",
                        output="screen", condition=real,
                        parameters=[controllers, {"use_sim_time": False}],
                        remappings=[("~/robot_description", "/robot_description")])
    active = PythonExpression(["'forward_position_controller' if '", cfg["controller"],
                               "' == 'forward' else 'joint_trajectory_controller'"])
    spawners = Node(
        package="controller_manager", executable="spawner", output="screen",
        condition=ros2_control,
        arguments=["joint_state_broadcaster", active, "--param-file", controllers,
                   "--controller-manager", "/controller_manager"])
    rviz = Node(package="rviz2", executable="rviz2", output="screen",
                condition=IfCondition(cfg["rviz"]))

    policy = LifecycleNode(
        package="mberil_ros", executable="policy_node", name="policy_node", namespace="",
        output="screen",
        parameters=[{"checkpoint": cfg["checkpoint"], "controller": cfg["controller"],
                     "control_rate": ParameterValue(cfg["control_rate"], value_type=float),
                     "use_sim_time": ParameterValue(use_sim_time, value_type=bool)}])
    configure = RegisterEventHandler(OnProcessStart(target_action=policy, on_start=[
        EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(policy),
                                    transition_id=Transition.TRANSITION_CONFIGURE))]))
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=policy, goal_state="inactive",
        entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(policy),
                                              transition_id=Transition.TRANSITION_ACTIVATE))]))
    # a configure that fails (bad checkpoint) or any core process exiting ends the launch
    refuse = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=policy, start_state="configuring", goal_state="unconfigured",
        entities=[OpaqueFunction(function=_refused)]))
    ends = ends_with(policy, mujoco_sim, control_node, state_publisher)
    return LaunchDescription([*args, state_publisher, mujoco_sim, gz, spawn, clock_bridge,
                              control_node, spawners, rviz, policy, configure, activate,
                              refuse, *ends])

