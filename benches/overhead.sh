#!/usr/bin/env bash
# Runs the overhead benchmark at full scale (release build) and writes benches/RESULTS.md.
# SLUICE_BENCH_SCALE=0.2 runs a shorter version. The mock, the bare hop and Sluice get
# SLUICE_BENCH_WORKERS worker threads each (here 2 unless set: Sluice's own default on this
# 2-core machine is one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
export SLUICE_BENCH_WORKERS="${SLUICE_BENCH_WORKERS:-2}"
cargo bench --bench overhead
