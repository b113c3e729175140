"""Static checks of what colcon and `ros2 launch` need (neither is installable here)."""

from __future__ import annotations

import ast
import importlib.util
import runpy
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


def console_scripts() -> dict[str, str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = [ast.literal_eval(e) for e in value.elts]
                    return dict(e.replace(" ", "").split("=", 1) for e in entries)
    raise AssertionError("setup.py has no console_scripts")


def test_package_xml_declares_runtime_dependencies():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "mberil_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    for needed in ("rclpy", "std_msgs", "sensor_msgs", "trajectory_msgs", "geometry_msgs",
                   "rosgraph_msgs", "std_srvs", "robot_state_publisher", "xacro",
                   "controller_manager", "ros_gz_sim", "ros_gz_bridge", "diagnostic_msgs",
                   "launch_ros", "gz_ros2_control", "forward_command_controller",
                   "joint_state_broadcaster", "joint_trajectory_controller",
                   "visualization_msgs"):
        assert needed in deps, needed


def test_every_imported_message_package_is_declared():
    """A node importing foo_msgs needs <exec_depend>foo_msgs</exec_depend> on a ROS machine
    and the ros-foo-msgs wheel in the `ros` extra everywhere else."""
    imported = set()
    for path in (REPO / "mberil_ros").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                package, _, kind = node.module.partition(".")
                if kind in ("msg", "srv", "action"):
                    imported.add(package)
    imported.discard("rcl_interfaces")  # a dependency of rclpy itself
    assert "visualization_msgs" in imported
    root = ET.parse(REPO / "package.xml").getroot()
    deps = {e.text for e in root.findall("exec_depend")}
    setup_text = (REPO / "setup.py").read_text()
    for package in sorted(imported):
        assert package in deps, f"package.xml lacks <exec_depend>{package}</exec_depend>"
        wheel = "ros-" + package.replace("_", "-")
        assert f'"{wheel}"' in setup_text, f"setup.py's ros extra lacks {wheel}"


def test_setup_installs_data_files_and_resource_marker():
    text = (REPO / "setup.py").read_text()
    for folder in ("launch", "config", "urdf"):
        assert f'"/{folder}", glob("{folder}/' in text
    assert (REPO / "resource" / "mberil_ros").is_file()
    assert "share/ament_index/resource_index/packages" in text


def test_console_scripts_point_at_real_functions():
    for name, target in console_scripts().items():
        module, func = target.split(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"{name}: module {module} missing"
        assert f"def {func}(" in Path(spec.origin).read_text(), f"{name}: {target}"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_standard_and_uses_installed_executables(path: Path):
    tree = ast.parse(path.read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    scripts = console_scripts()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Node":
            kwargs = {k.arg: k.value for k in node.keywords}
            if ast.literal_eval(kwargs["package"]) == "mberil_ros":
                executable = ast.literal_eval(kwargs["executable"])
                assert executable in scripts, f"{path.name}: {executable} is not installed"


LAUNCH_AVAILABLE = (
    importlib.util.find_spec("launch_ros") is not None
    and importlib.util.find_spec("launch.actions") is not None
)


@pytest.mark.skipif(not LAUNCH_AVAILABLE, reason="launch/launch_ros not installed (ROS machine)")
@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_description_builds(path: Path):
    description = runpy.run_path(str(path))["generate_launch_description"]()
    assert description.entities


def test_launch_files_name_only_configured_controllers_and_existing_files():
    """Every controller a launch file spawns is defined in config/ros2_controllers.yaml, and
    every package file it joins a path to exists."""
    import re

    import yaml

    defined = set(yaml.safe_load((REPO / "config" / "ros2_controllers.yaml").read_text())
                  ["controller_manager"]["ros__parameters"]) - {"update_rate", "use_sim_time"}
    for path in LAUNCH_FILES:
        text = path.read_text()
        for name in set(re.findall(r"\b\w+_(?:controller|broadcaster)\b", text)):
            assert name in defined, f"{path.name}: {name} not in ros2_controllers.yaml"
        for folder, name in re.findall(r'\[share, "(\w+)", "([\w.]+)"\]', text):
            assert (REPO / folder / name).is_file(), f"{path.name}: {folder}/{name} missing"
