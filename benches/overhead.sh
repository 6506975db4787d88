#!/usr/bin/env bash
# Runs the overhead benchmark at full scale (release build) and writes benches/RESULTS.md.
# SLUICE_BENCH_SCALE=0.2 runs a shorter version.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench overhead
