#!/usr/bin/env bash
# Create or refresh .venv/ at the repo root: torch==2.13.0 (CPU) first, so nothing pulls the
# multi-GB CUDA build, then this package in editable mode with its extras.
# Usage: scripts/setup_venv.sh [EXTRAS]   (default extras: ros,test)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-ros,test}"
venv="$root/.venv"
python="${PYTHON:-python3}"

# The ROS wheels re-exec the interpreter with their own LD_LIBRARY_PATH; never let that leak
# into a different Python (docs/architecture.md).
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv"
  "$python" -m venv "$venv"
fi

# Skip the pip work when nothing that decides the install changed since the last run.
stamp="$venv/.mberil-install-stamp"
want="$(cat "$root/setup.py" "$root/pyproject.toml" "$root/scripts/setup_venv.sh" | sha256sum | cut -d' ' -f1)-$extras"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c "import mberil_ros, torch" 2>/dev/null; then
  echo "[setup] $venv is up to date"
  exit 0
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
echo "[setup] installing torch==2.13.0 (CPU build)"
"${pip[@]}" install "torch==2.13.0"
echo "[setup] installing mberil_ros[$extras] (editable)"
"${pip[@]}" install -e "$root[$extras]"
echo "$want" > "$stamp"
echo "[setup] done: $venv/bin/mberil"
