#!/usr/bin/env bash
# Many carts, one server (not part of the test suite): N simulated carts
# (phantom pipelines with umind-nano, one process each) against one MLServer
# serving the reasoning head (serve/, docs/scale-out.md), for N = 1, 4, 8:
#  - each N twice, one right after the other: the carts with the head idle
#    ([reasoning] enabled = false) and with the head remote; the frame
#    path's p99 (median over carts) of each, and their ratio;
#  - per cart, the remote report latency (request to response) p50/p99, the
#    reports, and the protobuf bytes per report each way;
#  - for N = 1, the local head's report latency (its generation) beside;
#  - the fallback time: with one remote cart, the server is killed mid-run;
#    from the kill to the first report the fallback wrote (from the logs).
# The reasoning head is never batched on the server (a batch would change the
# arithmetic and so the tokens): its batch size is 1 by design.
# --pin CART_CPUS:SERVER_CPUS (e.g. 0:1) pins the carts and the server to
# separate CPUs (taskset), a stand-in for a server on its own machine: without
# it they share every core, and the server's work shows up in the carts' p99.
# Usage: scripts/bench-remote.sh [--frames N (300)] [--fps F (10)] [--workers W (2)] [--pin C:S] [--out DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
frames=300 fps=10 workers=2 OUT=out/bench/remote pin=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --frames) frames="$2"; shift 2 ;;
    --fps) fps="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --pin) pin="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --frames N, --fps F, --workers W, --pin C:S, --out DIR)" >&2; exit 2 ;;
  esac
done
cart_cpus=() server_cpus=()
if [ -n "$pin" ]; then
  [[ "$pin" =~ ^[0-9,-]+:[0-9,-]+$ ]] || { echo "--pin wants CART_CPUS:SERVER_CPUS, e.g. 0:1 (got $pin)" >&2; exit 2; }
  cart_cpus=(taskset -c "${pin%%:*}") server_cpus=(taskset -c "${pin##*:}")
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
GRPC=$(port) HTTP=$(port) METRICS=$(port)
"${server_cpus[@]}" serve/run.sh start --grpc-port "$GRPC" --http-port "$HTTP" --metrics-port "$METRICS" --workers "$workers" --state "$OUT/serve"
trap 'serve/run.sh stop --state "$OUT/serve" >/dev/null 2>&1 || true' EXIT

# definition NAME SEED REASONING_TOML
definition() {
  cat > "$OUT/$1.toml" <<TOML
name = "$1"
[source]
kind = "phantom"
probe = "linear"
depth_cm = 4
seed = $2
lesions = 1
fps = $fps
[process]
kind = "model"
[model]
dir = "onnx/umind-nano"
providers = ["cpu"]
intra_threads = 1
[reasoning]
$3
[load]
enabled = false
[[sinks]]
kind = "fake"
TOML
}
remote="backend = \"remote\"
min_interval_ms = 500
max_interval_ms = 2000
[reasoning.remote]
url = \"http://127.0.0.1:$GRPC\"
retry_ms = 500"
# carts NAME N REASONING_TOML: N carts at once; waits for all.
carts() {
  local pids=()
  for i in $(seq 1 "$2"); do
    definition "$1-$2-$i" "$i" "$3"
    RUST_LOG=warn,sonoflow_reasoning=info "${cart_cpus[@]}" ./target/release/sonoflow run "$OUT/$1-$2-$i.toml" --frames "$frames" --quiet \
      --stats-json "$OUT/$1-$2-$i.json" 2>"$OUT/$1-$2-$i.log" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}
for n in 1 4 8; do
  echo "== $n cart(s): head idle, then remote"
  carts idle "$n" "enabled = false"
  carts remote "$n" "$remote"
done
echo "== 1 cart, local head"
carts local 1 "min_interval_ms = 500
max_interval_ms = 2000"
echo "== fallback: 1 remote cart, the server killed mid-run"
definition fallback-1-1 1 "$remote"
RUST_LOG=warn,sonoflow_reasoning=info "${cart_cpus[@]}" ./target/release/sonoflow run "$OUT/fallback-1-1.toml" --frames "$frames" --quiet \
  --stats-json "$OUT/fallback-1-1.json" 2>"$OUT/fallback-1-1.log" &
cart=$!
sleep $(( frames / fps / 3 ))
date -u +%Y-%m-%dT%H:%M:%S.%NZ > "$OUT/killed-at"
serve/run.sh stop --state "$OUT/serve"
wait "$cart"
python3 - "$OUT" "$pin" "$fps" "$frames" "$workers" <<'PY'
import json, statistics, sys
from datetime import datetime
out, pin = sys.argv[1], sys.argv[2]
load = lambda name: json.load(open(f"{out}/{name}.json"))
med = statistics.median
summary = {"fps": float(sys.argv[3]), "frames": int(sys.argv[4]), "server_workers": int(sys.argv[5]),
           "pinned": dict(zip(("carts", "server"), pin.split(":"))) if pin else None, "carts": {}}
print("| carts | frame p99 idle (ms) | frame p99 remote (ms) | remote/idle | report latency p50 / p99 (ms) | reports | bytes out / back per report |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for n in (1, 4, 8):
    idle = [load(f"idle-{n}-{i}") for i in range(1, n + 1)]
    rem = [load(f"remote-{n}-{i}") for i in range(1, n + 1)]
    p99i = med(r["latency_ms"]["p99"] for r in idle)
    p99r = med(r["latency_ms"]["p99"] for r in rem)
    rr = [r["reasoning"]["remote"] for r in rem]
    lat50 = med(x["latency_ms"]["p50"] for x in rr)
    lat99 = med(x["latency_ms"]["p99"] for x in rr)
    reports = sum(x["reports"] for x in rr)
    sent = med(x["bytes_sent_per_report"] for x in rr)
    back = med(x["bytes_received_per_report"] for x in rr)
    summary["carts"][n] = dict(frame_p99_idle_ms=p99i, frame_p99_remote_ms=p99r, ratio=p99r / p99i,
                               report_p50_ms=lat50, report_p99_ms=lat99, reports=reports,
                               fallbacks=sum(x["fallbacks"] for x in rr),
                               bytes_sent_per_report=sent, bytes_received_per_report=back,
                               server_batch_size=1)
    print(f"| {n} | {p99i:.1f} | {p99r:.1f} | {p99r / p99i:.3f} | {lat50:.1f} / {lat99:.1f} | {reports} | {sent:.0f} / {back:.0f} |")
local = load("local-1-1")["reasoning"]
summary["local_report_ms"] = local["total_ms"]
print(f"\nlocal head (1 cart): report p50 {local['total_ms']['p50']:.1f} ms, p99 {local['total_ms']['p99']:.1f} ms, {local['reports']} reports")
killed = datetime.fromisoformat(open(f"{out}/killed-at").read().strip()[:26])
after = None
for line in open(f"{out}/fallback-1-1.log"):
    if "report:" in line:
        t = datetime.fromisoformat(line.split()[0].rstrip("Z")[:26])
        if t > killed:
            after = (t - killed).total_seconds() * 1000
            break
fb = load("fallback-1-1")["reasoning"]["remote"]
summary["fallback"] = dict(first_report_after_kill_ms=after, fallbacks=fb["fallbacks"], last_error=fb["last_error"])
print(f"fallback: first report {after:.0f} ms after the server was killed ({fb['fallbacks']} fallback reports); server batch size 1 (not batched by design)" if after is not None else "fallback: no report after the kill")
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(f"wrote {out}/summary.json")
PY
