"""The launch files run for real with `ros2 launch` (the package installed into a prefix the
way colcon installs it): deploy.launch.py drives the MuJoCo sim with a trained policy over
DDS (forward and trajectory controllers), record.launch.py writes a bag, and a failing node
or a refused checkpoint ends a launch with a non-zero status.

Needs the `ros2 launch` tool chain in the venv (.ci/run installs it); without it these tests
skip, and test_package_layout.py's static launch checks still run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ros_helpers import REPO, require_rclpy

require_rclpy()
ROS2 = Path(sys.executable).parent / "ros2"
if not ROS2.exists():
    pytest.skip("`ros2 launch` not installed in this venv (.ci/run installs it)",
                allow_module_level=True)

pytestmark = pytest.mark.ros
POLICY = REPO / "test" / "data" / "policy_reach_mlp"  # BC-MLP, see test/data/README.md
SOURCES = ("mberil_ros", "launch", "config", "urdf", "worlds", "resource", "package.xml",
           "setup.py", "setup.cfg", "pyproject.toml")


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    """`setup.py install --prefix` (what colcon's ament_python build does): executables in
    PREFIX/lib/mberil_ros, launch/config/urdf/worlds in PREFIX/share/mberil_ros."""
    root = tmp_path_factory.mktemp("colcon")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, src / name)
    out = subprocess.run([sys.executable, "setup.py", "-q", "install", "--prefix",
                          str(root / "install"), "--single-version-externally-managed",
                          "--record", str(root / "files.txt")],
                         cwd=src, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (root / "install" / "lib" / "mberil_ros" / "policy_node").exists()
    return root / "install"


def launch(prefix: Path, args: list[str], timeout: float = 180, **env_vars: str
           ) -> subprocess.CompletedProcess:
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), PYTHONUNBUFFERED="1", **env_vars)
    return subprocess.run([sys.executable, str(ROS2), "launch", "mberil_ros", *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


def episodes(output: str) -> list[bool]:
    return [m == "true" for m in re.findall(r'"success": (true|false)', output)]


@pytest.mark.parametrize("controller", ["forward", "trajectory"])
def test_deploy_launch_reaches_targets_in_the_mujoco_sim(prefix, controller):
    run = launch(prefix, ["deploy.launch.py", "sim:=true", "simulator:=mujoco",
                          f"checkpoint:={POLICY}", "episodes:=3", f"controller:={controller}"])
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    results = episodes(out)
    assert len(results) == 3 and sum(results) >= 2, out[-3000:]
    assert "policy_node: active" in out and "holds" in out


def test_deploy_launch_fails_on_a_refused_checkpoint(prefix, tmp_path):
    run = launch(prefix, ["deploy.launch.py", "sim:=true", "simulator:=mujoco",
                          f"checkpoint:={tmp_path / 'nothing'}"], timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "no complete checkpoint" in out and "policy_node refused to configure" in out


def test_record_launch_writes_a_bag_and_fails_when_a_node_dies(prefix, tmp_path):
    bag = tmp_path / "bag"
    args = ["record.launch.py", f"output:={bag}", "expert_episodes:=1",
            "suboptimal_episodes:=0", "real_time_factor:=20"]  # an int: typed, not YAML-read
    run = launch(prefix, args)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert (bag / "metadata.yaml").exists()
    # the bag exists: the recorder refuses, and the launch stops in one line naming it, how it
    # ended and the launch log, which holds the recorder's own message
    again = launch(prefix, args, timeout=120, ROS_LOG_DIR=str(tmp_path / "log"))
    out = again.stdout + again.stderr
    assert again.returncode != 0
    line = next(x for x in out.splitlines() if "recorder_node exited with code 2" in x)
    log = Path(line.rsplit("log: ", 1)[1])
    assert line.endswith("the launch stops every node; log: " + str(log))
    assert log.parent.parent == tmp_path / "log" and log.name == "launch.log"
    assert "output bag already exists" in log.read_text()


def test_train_launch_trains_and_fails_on_a_bad_dataset(prefix, tmp_path):
    from algos_tester import tiny_dataset

    data = tiny_dataset(tmp_path, expert=6, suboptimal=2)
    overrides = (f"dataset={data} output_dir={tmp_path / 'runs'} name=l steps=2 "
                 "checkpoint_every=2 eval_every=2 algo.data.val_fraction=0.25 "
                 "algo.network.backbone=mlp algo.network.d_model=16 algo.network.head_hidden=16")
    bc = prefix / "share" / "mberil_ros" / "config" / "train_bc.yaml"
    run = launch(prefix, ["train.launch.py", f"config:={bc}", f"overrides:={overrides}"])
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert (tmp_path / "runs" / "l" / "checkpoints" / "last").exists()
    last = tmp_path / "runs" / "l" / "checkpoints" / "last"
    fork = launch(prefix, ["train.launch.py", f"fork:={last}", f"config:={bc}",
                          "overrides:=name=l2 steps=4"])
    assert fork.returncode == 0, (fork.stdout + fork.stderr)[-3000:]
    assert f"config {bc} is ignored: resume and fork use" in fork.stdout + fork.stderr
    assert os.readlink(tmp_path / "runs" / "l2" / "checkpoints" / "last") == "00000004"
    assert json.loads((tmp_path / "runs" / "l2" / "fork.json").read_text())["step"] == 2
    bad = launch(prefix, ["train.launch.py", f"overrides:=dataset={tmp_path / 'none'}"])
    assert bad.returncode != 0
    assert "not a folder" in bad.stdout + bad.stderr


BRANCHES = {  # arguments -> the executables deploy.launch.py starts
    ("true", "gazebo"): {"robot_state_publisher", "create", "parameter_bridge", "spawner",
                         "policy_node", "gz_sim.launch.py"},
    ("true", "mujoco"): {"sim_node", "policy_node"},
    ("false", "gazebo"): {"robot_state_publisher", "ros2_control_node", "spawner",
                          "policy_node"},
}


@pytest.mark.parametrize("controller", ["forward", "trajectory"])
@pytest.mark.parametrize("sim, simulator", list(BRANCHES))
def test_deploy_launch_branches_start_what_they_should(prefix, monkeypatch, sim, simulator,
                                                       controller):
    """Without Gazebo or controller_manager: which actions each branch would run, with which
    controller, hardware and robot description (xacro really expands)."""
    import runpy

    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
    from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions
    from launch_ros.actions import Node

    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    ld = runpy.run_path(str(REPO / "launch" / "deploy.launch.py"))["generate_launch_description"]()
    ctx = LaunchContext()
    for entity in ld.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(ctx)
    ctx.launch_configurations.update({"sim": sim, "simulator": simulator, "checkpoint": "/c",
                                      "controller": controller, "hardware": "real",
                                      "real_plugin": "my_lab/NextageSystem"})

    def text(subs) -> str:  # noqa: ANN001
        return perform_substitutions(ctx, normalize_to_list_of_substitutions(subs))

    started = {}
    for e in ld.entities:
        if isinstance(e, (Node, IncludeLaunchDescription)) and (
                e.condition is None or e.condition.evaluate(ctx)):
            if isinstance(e, Node):
                started[e._Node__node_executable] = e
            else:
                started["gz_sim.launch.py"] = e
    assert set(started) == BRANCHES[(sim, simulator)]
    if "gz_sim.launch.py" in started:  # gz sim gets the package's world, running (-r)
        include = started["gz_sim.launch.py"]
        gz_args = dict((text(k), text(v)) for k, v in include.launch_arguments)["gz_args"]
        assert gz_args == f"-r {prefix / 'share' / 'mberil_ros' / 'worlds' / 'table.sdf'}"
        assert Path(gz_args.split()[-1]).is_file()
        create = [text(a) for a in started["create"]._Node__arguments]
        assert create[:2] == ["-topic", "robot_description"]
    if "spawner" in started:
        args = [text(a) for a in started["spawner"]._Node__arguments]
        active = {"forward": "forward_position_controller",
                  "trajectory": "joint_trajectory_controller"}[controller]
        assert args[:2] == ["joint_state_broadcaster", active]
    if "robot_state_publisher" in started:
        (params,) = started["robot_state_publisher"]._Node__parameters
        value = next(v for k, v in params.items() if text(k) == "robot_description")
        urdf = text(value.value)
        assert '<robot name="nextage"' in urdf and "<ros2_control" in urdf
        if sim == "true":
            assert "gz_ros2_control/GazeboSimSystem" in urdf and 'name="world"' in urdf
        else:
            assert "my_lab/NextageSystem" in urdf and 'name="world"' not in urdf
