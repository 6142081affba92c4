#!/usr/bin/env bash
# Starts, stops or checks MLServer serving a sonoflow model directory over the
# KServe v2 protocol (HTTP and gRPC): models reasoning_head, vision_encoder and
# mask_decoder (serve/mlserver/, docs/scale-out.md). Needs the venv from
# scripts/serve-venv.sh.
#
#   serve/run.sh start  [--model DIR] [--host ADDR] [--http-port N] [--grpc-port N]
#                       [--metrics-port N] [--workers N] [--threads N] [--state DIR]
#                       [--timeout S]
#       starts it in the background and waits until every model is ready
#       (exit 1, with the log's tail, if it is not within --timeout seconds)
#   serve/run.sh foreground [same options]   runs it in this terminal
#   serve/run.sh stop   [--state DIR]        stops the one started with that state dir
#   serve/run.sh status [--state DIR]        says whether it runs and is ready
#
# Defaults: --model onnx/umind-nano, --host 127.0.0.1 (loopback only: put a TLS
# proxy in front for other hosts, see docs/scale-out.md), ports 8080 (HTTP),
# 8081 (gRPC), 8082 (metrics), 1 worker process, 1 onnxruntime thread per
# session, state (pid file, log, metrics) in out/serve/. Environment variables
# SONOFLOW_SERVE_{MODEL,HOST,HTTP_PORT,GRPC_PORT,METRICS_PORT,WORKERS,THREADS,STATE}
# give the defaults too; arguments win.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SONOFLOW_SERVE_VENV:-$ROOT/.venv-serve}"

say()  { printf '\033[1;34m[serve]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[1;31m[serve] error:\033[0m %s\n' "$*" >&2; exit 1; }

cmd="${1:-}"
[ -n "$cmd" ] || fail "usage: serve/run.sh start|foreground|stop|status [options] (see the header of serve/run.sh)"
shift

MODEL="${SONOFLOW_SERVE_MODEL:-$ROOT/onnx/umind-nano}"
HOST="${SONOFLOW_SERVE_HOST:-127.0.0.1}"
HTTP_PORT="${SONOFLOW_SERVE_HTTP_PORT:-8080}"
GRPC_PORT="${SONOFLOW_SERVE_GRPC_PORT:-8081}"
METRICS_PORT="${SONOFLOW_SERVE_METRICS_PORT:-8082}"
WORKERS="${SONOFLOW_SERVE_WORKERS:-1}"
THREADS="${SONOFLOW_SERVE_THREADS:-1}"
STATE="${SONOFLOW_SERVE_STATE:-$ROOT/out/serve}"
TIMEOUT=120

while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --host) HOST="$2"; shift 2 ;;
    --http-port) HTTP_PORT="$2"; shift 2 ;;
    --grpc-port) GRPC_PORT="$2"; shift 2 ;;
    --metrics-port) METRICS_PORT="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --state) STATE="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    *) fail "unknown argument $1 (see the header of serve/run.sh)" ;;
  esac
done

PIDFILE="$STATE/mlserver.pid"
LOG="$STATE/mlserver.log"

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Ready: the server and every model answer /v2/.../ready on HTTP.
ready() {
  "$VENV/bin/python" - "$HOST" "$HTTP_PORT" <<'PY'
import sys, urllib.request
host, port = sys.argv[1], sys.argv[2]
host = "127.0.0.1" if host in ("0.0.0.0", "") else host
base = f"http://{host}:{port}/v2"
try:
    for path in ("/health/ready", "/models/reasoning_head/ready",
                 "/models/vision_encoder/ready", "/models/mask_decoder/ready"):
        with urllib.request.urlopen(base + path, timeout=2) as r:
            if r.status != 200:
                sys.exit(1)
except Exception:
    sys.exit(1)
PY
}

case "$cmd" in
  start|foreground)
    [ -x "$VENV/bin/mlserver" ] || fail "no MLServer at $VENV; run scripts/serve-venv.sh first"
    [ -f "$MODEL/sonoflow-model.toml" ] || fail "$MODEL is not a sonoflow model directory (no sonoflow-model.toml)"
    MODEL="$(cd "$MODEL" && pwd)"
    if pid="$(running_pid)"; then
      fail "already running (pid $pid, state $STATE); serve/run.sh stop --state $STATE first"
    fi
    mkdir -p "$STATE/metrics"
    # MLServer reads its ports and host from the environment (settings.json
    # leaves them out on purpose: its values would win over these).
    export MLSERVER_HOST="$HOST" MLSERVER_HTTP_PORT="$HTTP_PORT" MLSERVER_GRPC_PORT="$GRPC_PORT" \
           MLSERVER_METRICS_PORT="$METRICS_PORT" MLSERVER_PARALLEL_WORKERS="$WORKERS" \
           MLSERVER_METRICS_DIR="$STATE/metrics" MLSERVER_ENVIRONMENTS_DIR="$STATE/envs"
    export SONOFLOW_MODEL_DIR="$MODEL" SONOFLOW_SERVE_THREADS="$THREADS"
    export PYTHONPATH="$ROOT/serve:$ROOT/serve/mlserver${PYTHONPATH:+:$PYTHONPATH}"
    # onnxruntime's own threads only; numpy's BLAS is not on the hot path.
    export OMP_NUM_THREADS=1
    say "model $MODEL; HTTP $HOST:$HTTP_PORT, gRPC $HOST:$GRPC_PORT, metrics $HOST:$METRICS_PORT; $WORKERS worker(s), $THREADS thread(s) per session"
    cd "$STATE"
    if [ "$cmd" = foreground ]; then
      exec "$VENV/bin/mlserver" start "$ROOT/serve/mlserver"
    fi
    printf 'HOST=%q\nHTTP_PORT=%q\nGRPC_PORT=%q\n' "$HOST" "$HTTP_PORT" "$GRPC_PORT" >"$STATE/endpoint.env"
    setsid "$VENV/bin/mlserver" start "$ROOT/serve/mlserver" >"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    say "started (pid $(cat "$PIDFILE"), log $LOG); waiting until ready (at most ${TIMEOUT}s)"
    for _ in $(seq 1 $((TIMEOUT * 2))); do
      if ! running_pid >/dev/null; then
        tail -n 30 "$LOG" >&2 || true
        rm -f "$PIDFILE"
        fail "MLServer exited during start-up (log above, $LOG)"
      fi
      if ready; then
        say "ready: gRPC $HOST:$GRPC_PORT, HTTP http://$HOST:$HTTP_PORT/v2 (stop: serve/run.sh stop --state $STATE)"
        exit 0
      fi
      sleep 0.5
    done
    tail -n 30 "$LOG" >&2 || true
    fail "not ready after ${TIMEOUT}s (still running, pid $(cat "$PIDFILE"); log $LOG)"
    ;;
  stop)
    if ! pid="$(running_pid)"; then
      rm -f "$PIDFILE"
      say "not running (state $STATE)"
      exit 0
    fi
    # The server and its worker processes share the session setsid gave them.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 40); do
      kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; say "stopped (pid $pid)"; exit 0; }
      sleep 0.25
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    say "killed (pid $pid did not stop within 10 s)"
    ;;
  status)
    # shellcheck disable=SC1091
    [ -f "$STATE/endpoint.env" ] && source "$STATE/endpoint.env"
    if pid="$(running_pid)"; then
      if ready; then say "running (pid $pid) and ready on $HOST:$HTTP_PORT"; else say "running (pid $pid), not ready on $HOST:$HTTP_PORT"; exit 1; fi
    else
      say "not running (state $STATE)"; exit 3
    fi
    ;;
  *) fail "unknown command $cmd: start, foreground, stop or status" ;;
esac
