#!/usr/bin/env bash
# The reasoning head's decode speed against its floor, and its isolation
# from the frame path (not part of the test suite):
#  1. decode, like with like (benches/decode_floor.rs): the bare greedy ort
#     loop over the language model's graphs (the floor), the generator alone,
#     and the real head (its thread, streaming, grounding, the board) with no
#     frame path, one report each in turn, in rounds; prints tokens/s per
#     round, head/floor, CPU time and heap allocations a report, and the
#     medians (out/bench/reasoning/decode.json);
#  2. in the pipeline, for reference: the head's tokens/s in the default
#     pipeline as shipped (900 frames) and generating back to back (a keyframe
#     on every frame, the ladder off), each between two short floor runs, over that floor
#     (the head shares two cores with the frame path, at nice 10, and its
#     yields to frames are not counted as decode time);
#  3. isolation (unless --decode-only): per-frame latency on the default
#     phantom pipeline with the head off (idle) and generating back to back
#     (busy), for each thread split below; prints the busy/idle p99 ratio.
# Ratios, not absolute figures, are what to compare on a shared machine.
# Usage: scripts/bench-reasoning.sh [--reports N] [--rounds N] [--frames N] [--decode-only]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
frames=450 reports=100 rounds=5 isolation=1
while [ "$#" -gt 0 ]; do
  case "$1" in
    --frames) frames="$2"; shift 2 ;;
    --reports) reports="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --decode-only) isolation=0; shift ;;
    *) echo "unknown argument $1 (use --reports N, --rounds N, --frames N, --decode-only)" >&2; exit 2 ;;
  esac
done
OUT=out/bench/reasoning
mkdir -p "$OUT"
cargo build --release --locked -q -p sonoflow
cargo bench --locked -q -p sonoflow-benches --bench decode_floor --no-run 2>/dev/null

# floor REPORTS ROUNDS JSON: the side-by-side decode bench; its medians go to JSON.
floor() {
  cargo bench --locked -q -p sonoflow-benches --bench decode_floor -- onnx/umind-nano "$1" "$2" > "$3.log"
  grep -v -e '^decode-floor-json ' -e '^$' "$3.log"
  sed -n 's/^decode-floor-json //p' "$3.log" > "$3"
}

echo "== decode: floor, generator and head side by side (no frame path)"
floor "$reports" "$rounds" "$OUT/decode.json"

# definition NAME FRAME_THREADS REASONING_TOML: the default pipeline with
# these settings, the degradation ladder off (it would pause the head).
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
[load]
enabled = false
[[sinks]]
kind = "mp4"
path = "$OUT/$1.mp4"
TOML
}
run() { ./target/release/sonoflow run "$OUT/$1.toml" --frames "$2" --quiet --stats-json "$OUT/$1.json"; }
busy="min_interval_ms = 1
max_interval_ms = 1"

echo
echo "== in the pipeline, for reference (head at nice 10 beside the frame path; floor runs before and after)"
floor 20 1 "$OUT/floor-a.json" >/dev/null
./target/release/sonoflow run pipelines/default.toml --frames 900 --quiet --stats-json "$OUT/default.json"
floor 20 1 "$OUT/floor-b.json" >/dev/null
definition "pipeline-busy" 1 "$busy"
run "pipeline-busy" "$frames"
floor 20 1 "$OUT/floor-c.json" >/dev/null
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
load = lambda n: json.load(open(f"{out}/{n}.json"))
floor = lambda *ns: sum(load(n)["floor_tokens_per_s"] for n in ns) / len(ns)
summary = {}
for name, around in (("default", ("floor-a", "floor-b")), ("pipeline-busy", ("floor-b", "floor-c"))):
    r = load(name); s = r["reasoning"]; f = floor(*around)
    summary[name] = {"report": f"{name}.json", "frames_out": r["frames_out"], "latency_ms": r["latency_ms"],
                     "dropped": sum(r["dropped"].values()), "reports": s["reports"],
                     "tokens_per_s": s["tokens_per_s"], "floor_tokens_per_s": f, "ratio": s["tokens_per_s"] / f,
                     "ttft_ms_p50": s["ttft_ms"]["p50"], "report_ms_p50": s["total_ms"]["p50"],
                     "keyframes_per_min": s["keyframes_per_min"], "keyframes_by_reason": s["keyframes_by_reason"],
                     "frame_p99_ms_head_idle": s["frame_p99_ms_head_idle"], "frame_p99_ms_head_busy": s["frame_p99_ms_head_busy"]}
    print(f"{name} ({r['frames_out']} frames): {s['reports']} reports, {s['tokens_per_s']:.0f} tokens/s against a floor of {f:.0f} "
          f"(x{s['tokens_per_s'] / f:.2f}); ttft p50 {s['ttft_ms']['p50']:.1f} ms, report p50 {s['total_ms']['p50']:.1f} ms; "
          f"yielded {s['yielded_ms']:.0f} ms; {s['keyframes_per_min']:.1f} keyframes/min {s['keyframes_by_reason']}, "
          f"cancelled stale {s['cancelled_stale']}, under load {s['cancelled_under_load']}, superseded {s['superseded']}; "
          f"frame p99 head idle {s['frame_p99_ms_head_idle']:.1f} ms, busy {s['frame_p99_ms_head_busy']:.1f} ms")
json.dump(summary, open(f"{out}/pipeline-summary.json", "w"), indent=1)
PY

[ "$isolation" -eq 1 ] || exit 0
echo
echo "== isolation: frame latency with the head off and generating back to back"
# Idle: the frame path alone, per frame-thread count.
for ft in 1 2; do
  definition "idle-f$ft" "$ft" "enabled = false"
  run "idle-f$ft" "$frames"
done
# Busy: a keyframe on every frame, so the head never rests.
splits="f1-h1-nice0:1:1:0 f1-h1-nice10:1:1:10 f1-h1-nice19:1:1:19 f2-h1-nice10:2:1:10 f1-h2-nice10:1:2:10"
for s in $splits; do
  IFS=: read -r name ft ht nice <<<"$s"
  definition "busy-$name" "$ft" "$busy
intra_threads = $ht
nice = $nice"
  run "busy-$name" "$frames"
done
python3 - "$OUT" $splits <<'PY'
import json, sys
out, splits = sys.argv[1], sys.argv[2:]
load = lambda n: json.load(open(f"{out}/{n}.json"))
print(f"{'split':<16}{'idle p50/p99 ms':>18}{'busy p50/p99 ms':>18}{'p99 ratio':>11}{'reports':>9}{'dropped':>9}")
summary = {}
for s in splits:
    name, ft, ht, nice = s.split(":")
    idle, busy = load(f"idle-f{ft}"), load(f"busy-{name}")
    i, b, r = idle["latency_ms"], busy["latency_ms"], busy["reasoning"]
    summary[name] = {"frame_threads": int(ft), "head_threads": int(ht), "nice": int(nice),
                     "idle_report": f"idle-f{ft}.json", "busy_report": f"busy-{name}.json",
                     "idle_p50_ms": i["p50"], "idle_p99_ms": i["p99"], "busy_p50_ms": b["p50"], "busy_p99_ms": b["p99"],
                     "busy_over_idle_p99": b["p99"] / i["p99"], "reports": r["reports"],
                     "dropped": sum(busy["dropped"].values())}
    print(f"{name:<16}{i['p50']:>8.1f} / {i['p99']:<7.1f}{b['p50']:>8.1f} / {b['p99']:<7.1f}{b['p99'] / i['p99']:>10.2f}"
          f"{r['reports']:>9}{sum(busy['dropped'].values()):>9}")
json.dump(summary, open(f"{out}/isolation-summary.json", "w"), indent=1)
PY
