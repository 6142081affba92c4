#!/usr/bin/env bash
# The shown calipers against the phantom's ground truth, and the default
# pipeline with its overlay, with the shipped model (not part of the test
# suite; the figures of docs/performance.md's "Perception and the overlay"):
#  - two held-out scenes no training sequence used (linear 4 cm, seed 424242;
#    convex 6 cm, seed 515151; two lesions each), 150 frames at 10 fps, with
#    caliper smoothing on (as shipped) and off;
#  - the default pipeline as shipped (overlay drawn, to MP4), 150 frames;
#  - the same with the model's deadline on the frame path cut to 5 ms
#    ([model] stall_after_ms = 5): every frame goes on before its findings.
# Reports and summary.json land in --out (default out/bench/accuracy).
# Usage: scripts/bench-accuracy.sh [--frames N] [--model DIR] [--out DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
frames=150 model=onnx/umind-nano OUT=out/bench/accuracy
while [ "$#" -gt 0 ]; do
  case "$1" in
    --frames) frames="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --frames N, --model DIR, --out DIR)" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
cargo build --release --locked -q -p sonoflow

# scene NAME PROBE DEPTH SEED SMOOTHING
scene() {
  cat > "$OUT/$1.toml" <<TOML
name = "$1"
[source]
kind = "phantom"
probe = "$2"
depth_cm = $3
seed = $4
lesions = 2
fps = 10
[process]
kind = "model"
[model]
dir = "$model"
providers = ["cpu"]
intra_threads = 1
[perception]
smoothing = $5
[[sinks]]
kind = "fake"
TOML
}
# shipped NAME EXTRA_MODEL_TOML: pipelines/default.toml with the model's table extended.
shipped() {
  sed -e "s#out/default.mp4#$OUT/$1.mp4#" -e "s#^dir = \"onnx/umind-nano\"#dir = \"$model\"#" pipelines/default.toml \
    | awk -v extra="$2" '{ print } /^intra_threads = / && extra != "" { print extra }' > "$OUT/$1.toml"
}
run() { echo "[bench-accuracy] $1 ($frames frames)" >&2; ./target/release/sonoflow run "$OUT/$1.toml" --frames "$frames" --quiet --stats-json "$OUT/$1.json"; }

scene linear linear 4 424242 true
scene linear-raw linear 4 424242 false
scene convex convex 6 515151 true
scene convex-raw convex 6 515151 false
shipped default ""
shipped stall "stall_after_ms = 5"
for n in linear linear-raw convex convex-raw default stall; do run "$n"; done

python3 - "$OUT" "$model" <<'PY'
import json, sys
out, model = sys.argv[1], sys.argv[2]
load = lambda n: json.load(open(f"{out}/{n}.json"))
pick = lambda a: {k: a.get(k) for k in ("frames", "dice_mean", "dice_gt_0_5", "detection_precision", "detection_recall",
                                        "long_axis_mae_mm", "long_axis_p95_mm", "short_axis_mae_mm", "short_axis_p95_mm", "measured")}
summary = {"model": model, "scenes": {}, "pipelines": {}}
for n in ("linear", "convex"):
    summary["scenes"][n] = {"report": f"{n}.json", "smoothed": pick(load(n)["accuracy"]),
                            "unsmoothed_report": f"{n}-raw.json", "unsmoothed": pick(load(f"{n}-raw")["accuracy"])}
for n in ("default", "stall"):
    r = load(n)
    summary["pipelines"][n] = {"report": f"{n}.json", "fps_in": r.get("fps_in"), "fps_out": r.get("fps_out"),
                               "frames_in": r["frames_in"], "frames_out": r["frames_out"], "dropped": sum(r["dropped"].values()),
                               "latency_ms": r["latency_ms"], "allocations_per_frame": r.get("allocations_per_frame"),
                               "postprocess_ms": r.get("inference", {}).get("postprocess_ms"),
                               "paint_ms": r.get("overlay", {}).get("paint_ms"),
                               "passed_without_ai": r.get("inference", {}).get("passed_without_ai"),
                               "accuracy": pick(r["accuracy"]) if r.get("accuracy") else None}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
f = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"
print(f"{'scene':<8}{'Dice':>7}{'long MAE/p95 mm':>18}{'short MAE/p95 mm':>19}{'unsmoothed long MAE/p95':>26}")
for n, s in summary["scenes"].items():
    a, u = s["smoothed"], s["unsmoothed"]
    print(f"{n:<8}{f(a['dice_mean'], 3):>7}{f(a['long_axis_mae_mm']) + ' / ' + f(a['long_axis_p95_mm']):>18}"
          f"{f(a['short_axis_mae_mm']) + ' / ' + f(a['short_axis_p95_mm']):>19}{f(u['long_axis_mae_mm']) + ' / ' + f(u['long_axis_p95_mm']):>26}")
for n, p in summary["pipelines"].items():
    l, a = p["latency_ms"], p["accuracy"] or {}
    print(f"{n}: {p['frames_out']} of {p['frames_in']} frames out, {p['dropped']} dropped, latency p50 {f(l['p50'])} p99 {f(l['p99'])} ms, "
          f"allocations a frame {p['allocations_per_frame']}, passed without AI {p['passed_without_ai']}, "
          f"Dice {f(a.get('dice_mean'), 3)} on {a.get('frames')} frames, long MAE {f(a.get('long_axis_mae_mm'))} mm")
PY
