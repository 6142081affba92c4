#!/usr/bin/env bash
# The server checked for real, on this machine only (loopback): installs the
# venv if needed, exports phantom frames with the sonoflow binary, starts
# MLServer on free loopback ports, runs serve/check_server.py against it
# (contract, served vs local greedy tokens bit for bit, mask decoder,
# refusals, latency), optionally the Rust head on the same frames for a
# token-level comparison, checks the Triton repository layout
# (fill.sh, check_config.py, check_model_py.py), and stops the server.
#
# Usage: serve/e2e.sh [--rust] [--frames N] [--repeat N]
#   --rust   also run `sonoflow run` (its own reasoning head) on the frames
#            and compare its report with the served tokens
# Needs target/release/sonoflow or target/debug/sonoflow (cargo build).
# Writes under out/serve-e2e/ (gitignored). Exit status 0 when all matched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say()  { printf '\033[1;34m[serve-e2e]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[1;31m[serve-e2e] error:\033[0m %s\n' "$*" >&2; exit 1; }

RUST=0 FRAMES=4 REPEAT=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rust) RUST=1; shift ;;
    --frames) FRAMES="$2"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    *) fail "unknown argument $1" ;;
  esac
done

BIN=""
for b in target/release/sonoflow target/debug/sonoflow; do
  [ -x "$b" ] && { BIN="$b"; break; }
done
[ -n "$BIN" ] || fail "no sonoflow binary; run cargo build first"

scripts/serve-venv.sh
PY="$ROOT/.venv-serve/bin/python"
WORK="$ROOT/out/serve-e2e"
rm -rf "$WORK"
mkdir -p "$WORK"

say "exporting $FRAMES phantom frames with $BIN"
# One scene per frame: reports that differ from frame to frame.
"$BIN" phantom export --frames "$FRAMES" --sequence-length 1 --seed 5 --out "$WORK/frames" >/dev/null

read -r HTTP GRPC METRICS < <("$PY" - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()
PY
)
STATE="$WORK/server"
trap 'serve/run.sh stop --state "$STATE" >/dev/null 2>&1 || true' EXIT
serve/run.sh start --http-port "$HTTP" --grpc-port "$GRPC" --metrics-port "$METRICS" --state "$STATE"

RUST_ARGS=()
if [ "$RUST" = 1 ]; then
  say "running the Rust head on the same frames ($BIN run)"
  cat >"$WORK/compare.toml" <<EOF
# Written by serve/e2e.sh: the exported frames, looping, through umind-nano
# on the CPU, with the local reasoning head answering "[DIAG]".
name = "serve-e2e"
[source]
kind = "images"
path = "$WORK/frames"
loop = true
[process]
kind = "model"
[model]
dir = "$ROOT/onnx/umind-nano"
providers = ["cpu"]
intra_threads = 1
[reasoning]
prompt = "[DIAG]"
intra_threads = 1
[[sinks]]
kind = "fake"
EOF
  "$BIN" run "$WORK/compare.toml" --frames 150 --quiet --stats-json "$WORK/rust-stats.json" >/dev/null
  RUST_ARGS=(--rust-stats "$WORK/rust-stats.json")
fi

"$PY" serve/check_server.py --export "$WORK/frames" --url "127.0.0.1:$GRPC" --frames "$FRAMES" \
  --repeat "$REPEAT" --json "$WORK/summary.json" "${RUST_ARGS[@]}"

say "Triton repository: fill, config check, model.py under a stand-in backend"
serve/triton/fill.sh "$WORK/triton" >/dev/null
"$PY" serve/triton/check_config.py "$WORK/triton"
"$PY" serve/triton/check_model_py.py "$WORK/triton"
say "all checks passed (summary: $WORK/summary.json)"
