#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv/, then run the end-to-end demo.
# Extra arguments go to `mberil demo` (see `.venv/bin/mberil demo --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_venv.sh"
exec "$root/.venv/bin/mberil" demo "$@"
