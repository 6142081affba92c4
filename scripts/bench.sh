#!/usr/bin/env bash
# The latency suite and the criterion benches (not part of the test suite).
# A thin wrapper: sets up, builds the release binary, and runs
#  1. `sonoflow bench SUITE` (default standard): every scenario against the
#     bare-inference floor in alternating rounds, the Python peer beside
#     sonoflow; bench.json and report.html in OUT (default out/bench/suite;
#     docs/performance.md);
#  2. unless --no-criterion, `cargo bench -p sonoflow-benches`: criterion
#     benches of the pipeline's pieces beside an empty baseline, of the
#     phantom, of post-processing and the overlay at 640x480 and 1920x1080.
# Usage: scripts/bench.sh [SUITE] [--no-criterion] [any `sonoflow bench` option, e.g. --rounds 5 --out DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
criterion=1
args=()
for arg in "$@"; do
  case "$arg" in
    --no-criterion) criterion=0 ;;
    *) args+=("$arg") ;;
  esac
done
./target/release/sonoflow bench "${args[@]}"
if [ "$criterion" -eq 1 ]; then
  cargo bench --locked -p sonoflow-benches
fi
