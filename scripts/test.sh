#!/usr/bin/env bash
# The whole test suite on a fresh machine: set up .venv/, lint, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k sim -x).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_venv.sh"
cd "$root"
.venv/bin/ruff check mberil_ros test bench launch
# launch_testing's pytest plugins (present once `ros2 launch` is installed into the venv)
# target an older pytest hook API: the launch tests here run `ros2 launch` themselves.
exec .venv/bin/python -m pytest -p no:launch_testing -p no:launch_ros "$@"
