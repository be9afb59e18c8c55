#!/usr/bin/env bash
# Runs examples/quickstart.yaml end to end on the embedded default (an
# ephemeral standalone: SQLite, in-process registry). Installs what building
# needs when missing (protoc), then `orca run`. Extra arguments go to `orca run`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_deps
exec cargo run --release -q -p orca -- run examples/quickstart.yaml "$@"
