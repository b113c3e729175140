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


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a hidden temporary file beside ``path``, then rename it into place:
    a reader never sees a half-written file, and an interrupted write leaves the old one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def current_umask() -> int:
    import os

    mask = os.umask(0)  # the only portable way to read it; restored at once
    os.umask(mask)
    return mask


def apply_umask(root: Path) -> None:
    """Give ``root`` and everything under it the modes a plain mkdir/open would have.

    Temporary folders (mkdtemp: 0700) and some writers (0600) are private; what the project
    writes for users (datasets, checkpoints) must be readable by whoever the umask allows,
    e.g. another user or a deployment container."""
    import os

    mask = current_umask()
    os.chmod(root, 0o777 & ~mask)
    for parent, dirs, files in os.walk(root):
        for d in dirs:
            os.chmod(os.path.join(parent, d), 0o777 & ~mask)
        for f in files:
            os.chmod(os.path.join(parent, f), 0o666 & ~mask)
