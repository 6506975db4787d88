#!/usr/bin/env bash
# Instructions per request under callgrind (repeatable on a loaded machine): Sluice (the
# `profiling` build: release + line tables) with the overhead benchmark's features (policies
# with PII scan, SQLite log in `full` mode, two tokio workers) in front of the benchmark's
# mock. Per scenario: warm-up, counters zeroed, N requests on one keep-alive connection,
# a pause past the log writer's batch window, counters dumped; prints instructions / N
# (every thread: request path and log writer).
#
#   cargo build --profile profiling --bin sluice --bench overhead
#   bash benches/callgrind.sh [N]            # default N=300
# Dumps stay in $OUT (default /tmp/sluice-callgrind) for `callgrind_annotate --inclusive=yes`.
set -euo pipefail
N="${1:-300}"
T="${CARGO_TARGET_DIR:-target}/profiling"
OUT="${OUT:-/tmp/sluice-callgrind}"
rm -rf "$OUT"; mkdir -p "$OUT"
here="$(cd "$(dirname "$0")" && pwd)"
sluice_bin="${SLUICE_BIN:-$T/sluice}"
bench="${SLUICE_BENCH_BIN:-$(ls -t "$T"/deps/overhead-* | grep -v '\.d$' | head -1)}"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
url_of() { # waits for "listening on http://…" in file $1
  for _ in $(seq 600); do
    u=$(grep -o 'http://[0-9.:]*' "$1" 2>/dev/null | head -1 || true)
    [ -n "$u" ] && { echo "$u"; return; }
    sleep 0.1
  done
  echo "no address in $1" >&2; exit 1
}
SLUICE_BENCH_ROLE=mock "$bench" > "$OUT/mock.out" 2>&1 & pids+=($!)
mock=$(url_of "$OUT/mock.out")
cat > "$OUT/cfg.yaml" <<YAML
server:
  listen: 127.0.0.1:0
deployments:
  - name: bench
    provider: openai
    base_url: $mock/v1
    model: bench
  - name: claude
    provider: anthropic
    base_url: $mock
    model: bench
    api_key: bench-key
  - name: native-responses
    provider: openai
    base_url: $mock/v1
    model: bench
    supports: [responses]
models:
  - name: default
    deployments: [bench]
  - name: messages-native
    deployments: [claude]
  - name: responses-native
    deployments: [native-responses]
policies:
  - name: personal-data-stays-local
    when: {pii: any}
    require: {hosting: local}
log:
  path: $OUT/log.db
  prompts: full
YAML
RUST_LOG=warn TOKIO_WORKER_THREADS=2 valgrind --tool=callgrind \
  --callgrind-out-file="$OUT/callgrind.out.%p" "$sluice_bin" serve --config "$OUT/cfg.yaml" \
  > "$OUT/sluice.out" 2> "$OUT/valgrind.err" & vpid=$!; pids+=($vpid)
sluice=$(url_of "$OUT/sluice.out")
P='Write one short sentence about rivers and lakes, please.'
chat() { printf '{%s"model":"default","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"%s"}],"max_tokens":32}' "$1" "$P"; }
resp() { printf '{"model":"%s","instructions":"You are terse.","input":"%s","max_output_tokens":32,"store":false,"stream":%s}' "$1" "$P" "$2"; }
msgs() { printf '{"model":"%s","system":"You are terse.","messages":[{"role":"user","content":"%s"}],"max_tokens":32,"stream":%s}' "$1" "$P" "$2"; }
chat "" > "$OUT/chat.json"; chat '"stream":true,' > "$OUT/chat_stream.json"
resp default false > "$OUT/resp.json"; resp default true > "$OUT/resp_stream.json"
msgs default false > "$OUT/msgs.json"; msgs default true > "$OUT/msgs_stream.json"
scenario() { # name path body end
  local name=$1 path=$2 body=$3 end=${4:-}
  # ONLY="chat chat_stream" measures only those scenarios.
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  python3 "$here/callgrind_client.py" "$sluice$path" "$OUT/$body" 50 $end
  sleep 0.5
  callgrind_control -z "$vpid" > /dev/null
  python3 "$here/callgrind_client.py" "$sluice$path" "$OUT/$body" "$N" $end
  sleep 0.5
  callgrind_control -d "$name" "$vpid" > /dev/null
  local f; f=$(ls -t "$OUT"/callgrind.out.$vpid.* | head -1)
  mv "$f" "$OUT/$name.out"
  local ir; ir=$(grep -m1 '^summary:\|^totals:' "$OUT/$name.out" | awk '{print $2}')
  # Two costs valgrind inflates: SHA-256 runs its software path (valgrind hides SHA-NI) and
  # `rep movsb` counts per byte. The second figure leaves both out.
  local skew; skew=$(callgrind_annotate --inclusive=yes --threshold=100 "$OUT/$name.out" 2>/dev/null \
    | grep -E 'sha2::sha256::compress256 \[|__memcpy_avx_unaligned_erms \[' \
    | awk '{gsub(",","",$1); s+=$1} END {print s+0}')
  printf '%-26s %10d instructions per request, %10d without SHA-256 and memcpy\n' \
    "$name" $((ir / N)) $(((ir - skew) / N))
}
scenario chat /v1/chat/completions chat.json
scenario chat_stream /v1/chat/completions chat_stream.json '[DONE]'
scenario responses_bridged /v1/responses resp.json
scenario responses_bridged_stream /v1/responses resp_stream.json response.completed
scenario messages_bridged /v1/messages msgs.json
scenario messages_bridged_stream /v1/messages msgs_stream.json message_stop
