"""Where the package's data files (urdf/, config/, launch/) live.

From a source checkout or an editable install they sit beside the Python package; after
`colcon build` or a wheel install they sit under ``share/mberil_ros``.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "mberil_ros"


def share_dir() -> Path:
    """Return the folder holding urdf/, config/ and launch/."""
    source_root = Path(__file__).resolve().parents[1]
    if (source_root / "urdf").is_dir() and (source_root / "package.xml").is_file():
        return source_root
    try:  # a ROS install
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # noqa: BLE001 - ament_index missing or package not indexed
        pass
    candidate = Path(sys.prefix) / "share" / PACKAGE
    if (candidate / "urdf").is_dir():
        return candidate
    raise FileNotFoundError(f"cannot find the {PACKAGE} share folder (urdf/, config/)")


def urdf_xacro() -> Path:
    return share_dir() / "urdf" / "nextage.urdf.xacro"


def config_file(name: str) -> Path:
    return share_dir() / "config" / name
