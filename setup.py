"""ament_python package mberil_ros; also a plain pip package (`pip install -e .[ros,test]`)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "mberil_ros"

# Optional extras. The ROS 2 wheels are never a hard dependency: on a ROS machine they would
# shadow the system rclpy.
ros_wheels = [
    "ros-rclpy[fastrtps]",
    "ros-std-msgs",
    "ros-sensor-msgs",
    "ros-trajectory-msgs",
    "ros-geometry-msgs",
    "ros-builtin-interfaces",
    "ros-std-srvs",
    "ros-rosgraph-msgs",
    "ros-diagnostic-msgs",
    "ros-visualization-msgs",  # /task/obstacles (MarkerArray)
    "ros-lifecycle-msgs",  # policy_node is a lifecycle node
]

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    # the CPU selective-scan kernel is compiled from this C source at first use
    package_data={"mberil_ros.models": ["csrc/*.c"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
        ("share/" + package_name + "/urdf", glob("urdf/*")),
        ("share/" + package_name + "/worlds", glob("worlds/*")),
    ],
    python_requires=">=3.10",
    install_requires=[
        # Install torch==2.13.0 (CPU) before this package: a bare "torch" pulls CUDA wheels.
        "torch>=2.1",
        "numpy>=1.24",
        "mujoco>=3.1",
        "xacro>=2.0",
        "rosbags>=0.10",
        "mcap>=1.6",  # the recorder's MCAP writer (Writer.flush) and recovery's stream reader
        "pyarrow>=14",
        "safetensors>=0.4",
        "PyYAML>=6",
        "tqdm>=4.60",
        "tensorboard>=2.14",
        "matplotlib>=3.7",
    ],
    extras_require={
        "ros": ros_wheels,
        "cuda": ["mamba-ssm>=2.2", "causal-conv1d>=1.4"],
        "test": ["pytest>=7", "ruff>=0.5", "mambapy>=1.2"],  # mambapy: pure-torch Mamba oracle
    },
    zip_safe=True,
    maintainer="mberil_ros maintainers",
    maintainer_email="maintainers@mberil-ros.invalid",
    description="Offline-MB-ERIL with Mamba for the NEXTAGE, as a ROS 2 package suite",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "mberil = mberil_ros.cli:main",
            "recorder_node = mberil_ros.nodes.recorder_node:main",
            "sim_node = mberil_ros.nodes.sim_node:main",
            "demonstrator_node = mberil_ros.nodes.demonstrator_node:main",
            "trainer_node = mberil_ros.nodes.trainer_node:main",
            "policy_node = mberil_ros.nodes.policy_node:main",
        ],
    },
)
