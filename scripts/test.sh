#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then lint and every test,
# including the eBPF ones (they fail, never skip, when BPF cannot load).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"
"$ROOT/scripts/ensure_services.sh"   # PostgreSQL, MariaDB, Redis on loopback for the protocol tests
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
