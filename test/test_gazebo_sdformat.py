"""Gazebo's own parser (libsdformat, a Debian package) accepts what deploy.launch.py's
gazebo branch hands it: the expanded URDF keeps every link, the 15 revolute joints and the
gz_ros2_control plugin (a massless WAIST once made it drop the whole robot), and the world
file parses. test/sdformat_check.cc is compiled against the installed libsdformat12."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mberil_ros.paths import share_dir
from mberil_ros.robot_description import expand_xacro

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def sdformat_check(tmp_path_factory) -> Path:
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "sdformat12"],
                           capture_output=True, text=True) if shutil.which("pkg-config") else None
    if flags is None or flags.returncode != 0 or shutil.which("g++") is None:
        pytest.skip("libsdformat12 (apt-get install libsdformat-dev g++) not installed")
    exe = tmp_path_factory.mktemp("sdf") / "sdformat_check"
    build = subprocess.run(["g++", "-std=c++17", str(HERE / "sdformat_check.cc"),
                            *flags.stdout.split(), "-o", str(exe)], capture_output=True,
                           text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    return exe


def _check(exe: Path, path: Path) -> tuple[int, str]:
    out = subprocess.run([str(exe), str(path)], capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout


def test_gazebo_loads_the_whole_robot_with_its_ros2_control_plugin(sdformat_check, tmp_path):
    urdf = tmp_path / "nextage.urdf"
    urdf.write_text(expand_xacro(None, hardware="gazebo", attach_to_world="true",
                                 controllers_file=str(share_dir() / "config" /
                                                      "ros2_controllers.yaml")))
    code, out = _check(sdformat_check, urdf)
    assert code == 0, out
    assert "links: 16" in out and "revolute_joints: 15" in out
    assert "plugin: gz_ros2_control-system" in out


def test_the_world_file_parses(sdformat_check):
    code, out = _check(sdformat_check, share_dir() / "worlds" / "table.sdf")
    assert code == 0 and "worlds: 1" in out, out
