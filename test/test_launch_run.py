"""The launch files run for real with `ros2 launch` (the package installed into a prefix the
way colcon installs it): deploy.launch.py drives the MuJoCo sim with a trained policy over
DDS (forward and trajectory controllers), record.launch.py writes a bag, and a failing node
or a refused checkpoint ends a launch with a non-zero status.

Needs the `ros2 launch` tool chain in the venv (.ci/run installs it); without it these tests
skip, and test_package_layout.py's static launch checks still run."""

from __future__ import annotations

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


def launch(prefix: Path, args: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), PYTHONUNBUFFERED="1")
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
    again = launch(prefix, args, timeout=120)  # the bag exists: the recorder refuses
    assert again.returncode != 0
    assert "output bag already exists" in again.stdout + again.stderr


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
    bad = launch(prefix, ["train.launch.py", f"overrides:=dataset={tmp_path / 'none'}"])
    assert bad.returncode != 0
    assert "not a folder" in bad.stdout + bad.stderr
