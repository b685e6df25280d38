#!/usr/bin/env bash
# The main job on the embedded default: install what is missing, start the Vizier on this host,
# start the demo workload, and open the live HTTP view.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
PXTUI="$ROOT/.venv/bin/pxtui"
"$PXTUI" up
"$PXTUI" demo start
exec "$PXTUI" live px/http_data "$@"
