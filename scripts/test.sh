#!/usr/bin/env bash
# The whole test suite on a fresh machine: set up .venv/, lint, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k sim -x).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_venv.sh"
cd "$root"
.venv/bin/ruff check mberil_ros test bench launch
exec .venv/bin/python -m pytest "$@"
