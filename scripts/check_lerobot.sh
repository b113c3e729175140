#!/usr/bin/env bash
# Check that LeRobot itself reads our datasets (docs/lerobot.md): make or refresh the separate
# venv .venv-lerobot/ with lerobot==0.4.4, then run scripts/check_lerobot.py in .venv, which
# records and converts a fresh bag (or takes DATASET) and compares LeRobotDataset's view of it
# with mberil_ros's reader.
#
# Why a venv of its own: lerobot 0.4.4 (its last release for Python 3.11) requires
# torch<2.11 and torchvision<0.26, while .venv has torch 2.13. The CPU torch wheels on this
# kind of machine are 2.13 only, and no torchvision on PyPI works with a CPU torch (their
# Linux wheels link CUDA torch), so this installs what `pip install lerobot==0.4.4` installs:
# torch 2.10 with its CUDA libraries from PyPI (about 4 GB downloaded, 8 GB on disk, ~4 min).
# It runs on the CPU. Versions are pinned by scripts/lerobot-constraints.txt.
#
# Usage: scripts/check_lerobot.sh [--setup-only] [DATASET] [check_lerobot.py options]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-lerobot"
python="${PYTHON:-python3}"
constraints="$root/scripts/lerobot-constraints.txt"

# .venv's ROS wheels re-exec their interpreter with their own LD_LIBRARY_PATH; never let
# that reach another Python (docs/architecture.md).
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE

if [ ! -x "$venv/bin/python" ]; then
  echo "[lerobot] creating $venv"
  "$python" -m venv "$venv"
fi
stamp="$venv/.mberil-install-stamp"
want="$(cat "$constraints" "$root/scripts/check_lerobot.sh" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$venv/bin/python" -c "import lerobot.datasets.lerobot_dataset" 2>/dev/null; then
  echo "[lerobot] $venv is up to date"
else
  echo "[lerobot] installing lerobot==0.4.4 into $venv (torch 2.10 from PyPI: a few minutes)"
  # (the filter drops pip's warnings about local index folders of this machine's pip config)
  "$venv/bin/python" -m pip --disable-pip-version-check -q install \
    -c "$constraints" "lerobot==0.4.4" 2>&1 | { grep -v "is ignored: it is neither" || true; }
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--setup-only" ]; then
  exit 0
fi
bash "$root/scripts/setup_venv.sh" >/dev/null
exec "$root/.venv/bin/python" "$root/scripts/check_lerobot.py" --python "$venv/bin/python" "$@"
