#!/usr/bin/env bash
# How well the frame path holds up beside the reasoning head and other load
# (not part of the test suite; figures for docs/performance.md):
#  - the default phantom pipeline as shipped (head on, degradation ladder on),
#    with and without a CPU hog (one busy loop per core at the same priority);
#    the per-frame p99 split by whether the head was generating as the frame
#    left (reasoning.frame_p99_ms_head_busy / _idle, same run) and the ratio;
#  - the same with the ladder off ([load] enabled = false), to see what it buys;
#  - the head forced busy (a keyframe on every frame) against the head off,
#    across runs, with and without the hog.
# Reports land in out/bench/load/. Usage: scripts/bench-load.sh [--frames N]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
frames=900
while [ "$#" -gt 0 ]; do
  case "$1" in
    --frames) frames="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --frames N)" >&2; exit 2 ;;
  esac
done
OUT=out/bench/load
mkdir -p "$OUT"
cargo build --release --locked -q -p sonoflow

hogs=()
hog_on() { for _ in $(seq "$(nproc)"); do ( while :; do :; done ) & hogs+=("$!"); done; }
hog_off() { if [ "${#hogs[@]}" -gt 0 ]; then kill "${hogs[@]}" 2>/dev/null || true; wait "${hogs[@]}" 2>/dev/null || true; fi; hogs=(); }
trap hog_off EXIT

# definition NAME EXTRA_TOML: pipelines/default.toml with EXTRA_TOML appended, writing to $OUT.
definition() {
  sed "s#out/default.mp4#$OUT/$1.mp4#" pipelines/default.toml > "$OUT/$1.toml"
  printf '%s\n' "$2" >> "$OUT/$1.toml"
}
run() { echo "[bench-load] $1 ($frames frames)" >&2; ./target/release/sonoflow run "$OUT/$1.toml" --frames "$frames" --quiet --stats-json "$OUT/$1.json"; }

definition shipped ""
definition no-ladder $'[load]\nenabled = false'
definition head-off $'[reasoning]\nenabled = false'
definition head-busy $'[reasoning]\nmin_interval_ms = 1\nmax_interval_ms = 1'
definition head-busy-no-ladder $'[reasoning]\nmin_interval_ms = 1\nmax_interval_ms = 1\n[load]\nenabled = false'
names="shipped no-ladder head-off head-busy head-busy-no-ladder"
for n in $names; do run "$n"; done
hog_on
for n in $names; do cp "$OUT/$n.toml" "$OUT/$n-hog.toml"; sed -i "s#$OUT/$n.mp4#$OUT/$n-hog.mp4#" "$OUT/$n-hog.toml"; run "$n-hog"; done
hog_off

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
load = lambda n: json.load(open(f"{out}/{n}.json"))
def ladder(r):
    l = r.get("load")
    return "off" if not l else f"{l['highest']} ({l['climbs']} up, {l['descents']} down)"
summary = {"same_run": {}, "across_runs": {}}
for n in ["shipped", "no-ladder", "shipped-hog", "no-ladder-hog"]:
    r = load(n); s = r["reasoning"]
    summary["same_run"][n] = {"report": f"{n}.json", "frame_p99_ms_head_idle": s["frame_p99_ms_head_idle"],
                              "frame_p99_ms_head_busy": s["frame_p99_ms_head_busy"], "frames_head_busy": s["frames_head_busy"],
                              "reports": s["reports"], "ladder": ladder(r), "frames_out": r["frames_out"],
                              "dropped": sum(r["dropped"].values())}
for suffix, label in [("", "no_hog"), ("-hog", "hog")]:
    p99 = lambda n: load(n)["latency_ms"]["p99"]
    off, busy, raw = p99(f"head-off{suffix}"), p99(f"head-busy{suffix}"), p99(f"head-busy-no-ladder{suffix}")
    summary["across_runs"][label] = {"head_off_p99_ms": off, "head_busy_p99_ms": busy, "busy_over_off": busy / off,
                                     "head_busy_no_ladder_p99_ms": raw, "busy_no_ladder_over_off": raw / off}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print("\nsame run, frames split by whether the head was generating (p99 ms):")
print(f"{'run':<24}{'idle p99':>10}{'busy p99':>10}{'ratio':>8}{'busy frames':>13}{'reports':>9}  ladder")
for n, s in summary["same_run"].items():
    i, b = s["frame_p99_ms_head_idle"], s["frame_p99_ms_head_busy"]
    ratio = b / i if i and b else float("nan")
    print(f"{n:<24}{i:>10.1f}{b:>10.1f}{ratio:>8.2f}{s['frames_head_busy']:>13}{s['reports']:>9}  {s['ladder']}")
print("\nacross runs: head generating back to back vs head off (p99 ms):")
print(f"{'hog':<6}{'head off':>10}{'busy':>8}{'ratio':>8}{'busy, no ladder':>17}{'ratio':>8}")
for key, label in [("no_hog", "no"), ("hog", "yes")]:
    a = summary["across_runs"][key]
    print(f"{label:<6}{a['head_off_p99_ms']:>10.1f}{a['head_busy_p99_ms']:>8.1f}{a['busy_over_off']:>8.2f}"
          f"{a['head_busy_no_ladder_p99_ms']:>17.1f}{a['busy_no_ladder_over_off']:>8.2f}")
PY
