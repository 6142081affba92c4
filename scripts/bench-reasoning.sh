#!/usr/bin/env bash
# The reasoning head's isolation and speed (not part of the test suite):
#  1. per-frame latency on the default phantom pipeline with the head off
#     (idle) and with it generating back to back (busy: a keyframe on every
#     frame), for each thread split below; prints the busy/idle p99 ratio;
#  2. the default pipeline as shipped for 900 frames: keyframes per minute,
#     time to first token, tokens per second, stale cancellations;
#  3. the bare decode floor (benches/decode_floor.rs) of the same graphs.
# Reports land in out/bench/reasoning/. Usage: scripts/bench-reasoning.sh [--frames N]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
frames=450
while [ "$#" -gt 0 ]; do
  case "$1" in
    --frames) frames="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --frames N)" >&2; exit 2 ;;
  esac
done
OUT=out/bench/reasoning
mkdir -p "$OUT"
cargo build --release --locked -q -p sonoflow

# definition NAME FRAME_THREADS REASONING_TOML: the default pipeline with these settings.
definition() {
  cat > "$OUT/$1.toml" <<TOML
name = "$1"
[source]
kind = "phantom"
probe = "linear"
depth_cm = 4
seed = 1
lesions = 1
width = 640
height = 480
fps = 30
[process]
kind = "model"
[model]
dir = "onnx/umind-nano"
providers = ["cpu"]
intra_threads = $2
[reasoning]
$3
[[sinks]]
kind = "mp4"
path = "$OUT/$1.mp4"
TOML
}
run() { ./target/release/sonoflow run "$OUT/$1.toml" --frames "$frames" --quiet --stats-json "$OUT/$1.json"; }

# Idle: the frame path alone, per frame-thread count.
for ft in 1 2; do
  definition "idle-f$ft" "$ft" "enabled = false"
  run "idle-f$ft"
done
# Busy: a keyframe on every frame, so the head never rests.
busy="min_interval_ms = 1
max_interval_ms = 1"
splits="f1-h1-nice0:1:1:0 f1-h1-nice10:1:1:10 f1-h1-nice19:1:1:19 f2-h1-nice10:2:1:10 f1-h2-nice10:1:2:10"
for s in $splits; do
  IFS=: read -r name ft ht nice <<<"$s"
  definition "busy-$name" "$ft" "$busy
intra_threads = $ht
nice = $nice"
  run "busy-$name"
done
python3 - "$OUT" $splits <<'PY'
import json, sys
out, splits = sys.argv[1], sys.argv[2:]
load = lambda n: json.load(open(f"{out}/{n}.json"))
print("\nisolation (default phantom pipeline, 640x480@30, mp4 + overlay):")
print(f"{'split':<16}{'idle p50/p99 ms':>18}{'busy p50/p99 ms':>18}{'p99 ratio':>11}{'reports':>9}{'dropped':>9}")
for s in splits:
    name, ft, ht, nice = s.split(":")
    idle, busy = load(f"idle-f{ft}"), load(f"busy-{name}")
    i, b, r = idle["latency_ms"], busy["latency_ms"], busy["reasoning"]
    print(f"{name:<16}{i['p50']:>8.1f} / {i['p99']:<7.1f}{b['p50']:>8.1f} / {b['p99']:<7.1f}{b['p99'] / i['p99']:>10.2f}"
          f"{r['reports']:>9}{sum(busy['dropped'].values()):>9}")
PY

# The default pipeline as shipped.
./target/release/sonoflow run pipelines/default.toml --frames 900 --quiet --stats-json "$OUT/default.json"
python3 - "$OUT/default.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r["reasoning"]
print(f"\ndefault pipeline, {r['frames_out']} frames: {s['keyframes_per_min']:.1f} keyframes/min {s['keyframes_by_reason']}, "
      f"{s['reports']} reports, cancelled stale {s['cancelled_stale']}, superseded {s['superseded']}, "
      f"ttft p50 {s['ttft_ms']['p50']:.1f} ms p99 {s['ttft_ms']['p99']:.1f} ms, {s['tokens_per_s']:.0f} tokens/s, "
      f"report p50 {s['total_ms']['p50']:.1f} ms; frame p99 head idle {s['frame_p99_ms_head_idle']:.1f} ms, busy {s['frame_p99_ms_head_busy']:.1f} ms")
PY
cargo bench -q -p sonoflow-benches --bench decode_floor -- onnx/umind-nano 200 2>/dev/null | grep "decode floor"
