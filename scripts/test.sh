#!/usr/bin/env bash
# The whole test suite: set up what is missing, check the architecture's
# stated absences and that docs/model-card.md is what onnx/umind/card.py
# writes from the model's metrics.json and train-log.json, check formatting
# and clippy (warnings are errors), then run every unit and integration test.
#
# SONOFLOW_LINT=1 runs `cargo fmt --all --check` and
# `cargo clippy --workspace --all-targets --locked -- -D warnings` before the
# tests, and fails the script if either does; SONOFLOW_LINT=0 skips them.
set -euo pipefail
SONOFLOW_LINT="${SONOFLOW_LINT:-1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh" --no-build
source "$ROOT/scripts/env.sh"
cd "$ROOT"
# A clean clone builds once: incremental caches would only add gigabytes of
# disk (CI once ran out of it). Export CARGO_INCREMENTAL=1 to keep them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
bash scripts/check-architecture.sh
echo "[test] docs/model-card.md against onnx/umind-nano/metrics.json and train-log.json (onnx/umind/card.py)" >&2
(cd onnx && python3 -m umind.card --check)
if [[ "$SONOFLOW_LINT" == 1 ]]; then
  for tool in fmt clippy; do
    component="${tool/fmt/rustfmt}"
    if ! cargo "$tool" --version >/dev/null 2>&1 && command -v rustup >/dev/null; then
      echo "[test] installing $component (rustup component add $component)" >&2
      rustup component add "$component" >/dev/null 2>&1 || true
    fi
    cargo "$tool" --version >/dev/null 2>&1 ||
      { echo "[test] cargo $tool is not installed: rustup component add $component" >&2; exit 1; }
  done
  echo "[test] cargo fmt --all --check" >&2
  if ! cargo fmt --all --check; then
    echo "[test] FAILED: the files above are not formatted; run cargo fmt --all (or SONOFLOW_LINT=0 to skip)" >&2
    exit 1
  fi
  echo "[test] cargo clippy --workspace --all-targets --locked -- -D warnings" >&2
  if ! cargo clippy --workspace --all-targets --locked -- -D warnings; then
    echo "[test] FAILED: clippy warnings above; fix them, or allow one where it is wrong, with the reason (or SONOFLOW_LINT=0 to skip)" >&2
    exit 1
  fi
fi
echo "[test] cargo test --workspace" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast --exclude sonoflow-benches 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite (cargo ends on a per-crate doc-test line).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
