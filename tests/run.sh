#!/usr/bin/env bash
# Runs Sluice's whole test suite on a fresh machine: makes the Python virtual environment the
# SDK tests use (official `openai` package + pytest) when it is missing, then `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SLUICE_VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import openai, pytest' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'openai>=1.50' 'pytest>=8'
fi
export SLUICE_PYTHON="$VENV/bin/python"
cargo test --all-targets "$@"
