#!/usr/bin/env bash
# The whole test suite: set up what is missing, check the architecture's
# stated absences, then run every unit and integration test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh" --no-build
source "$ROOT/scripts/env.sh"
cd "$ROOT"
bash scripts/check-architecture.sh
echo "[test] cargo test --workspace" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast --exclude sonoflow-benches 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite (cargo ends on a per-crate doc-test line).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
