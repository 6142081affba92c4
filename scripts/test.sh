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
cargo test --workspace --locked --exclude sonoflow-benches
