#!/usr/bin/env bash
# Runs Orca's whole test suite on a fresh machine: installs and starts what the
# tests need (PostgreSQL, Python packages, cargo-nextest) when missing, then
# `cargo nextest run --workspace`. Extra arguments go to nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh

# --- Build dependencies and etcd --------------------------------------------
ensure_build_deps
ensure_etcd

# --- PostgreSQL -------------------------------------------------------------
if [ -z "${ORCA_TEST_POSTGRES_URL:-}" ]; then
  ensure_postgres
  export ORCA_TEST_POSTGRES_URL="$ORCA_PG_URL"
fi

# --- Python packages used by examples and task tests -------------------------
PY=${ORCA_PYTHON:-python3}
if ! "$PY" -c 'import sklearn' >/dev/null 2>&1; then
  log "installing Python packages (scikit-learn)"
  "$PY" -m pip install -q scikit-learn
fi
# moto in server mode: the S3-compatible server of the S3 log store tests
# (they fail, rather than skip, without it when CI is set).
if ! "$PY" -c 'import moto.server' >/dev/null 2>&1; then
  log "installing Python packages (moto[server])"
  "$PY" -m pip install -q 'moto[server]'
fi

# --- cargo-nextest ------------------------------------------------------------
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

log "cargo nextest run --workspace"
exec cargo nextest run --workspace --no-fail-fast "$@"
