#!/usr/bin/env bash
# How `[perception] min_finding_area_mm2` trades false findings for missed
# lesions, on validation phantom frames only (never the held-out ones the
# model card reports): the validation split of onnx/train.sh (seed 202) and
# 400 lesion-free frames of the same looks (seed 212), scored by
# `sonoflow eval --min-finding-area-mm2 A` for each area A. Writes
# --out/summary.json (default out/finding-area) and prints a table.
# Not part of the test suite.
# Usage: scripts/finding-area-sweep.sh [--areas 0,1,2,3,4,6,8] [--model DIR] [--out DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AREAS=0,1,2,3,4,6,8 MODEL=onnx/umind-nano OUT=out/finding-area
while [ "$#" -gt 0 ]; do
  case "$1" in
    --areas) AREAS="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --areas A,B,..., --model DIR, --out DIR)" >&2; exit 2 ;;
  esac
done
cd "$ROOT"
bash scripts/bootstrap.sh >/dev/null
source scripts/env.sh
cargo build --release --locked -q -p sonoflow
BIN=target/release/sonoflow
LOOKS=(--randomise --looks focused,harmonic --contrast-bands=-40:4,7:12)
mkdir -p "$OUT"
[ -f "$OUT/val/manifest.json" ] || "$BIN" phantom export --frames 480 --seed 202 --sequence-length 4 --out "$OUT/val" "${LOOKS[@]}"
[ -f "$OUT/val-empty/manifest.json" ] || "$BIN" phantom export --frames 400 --seed 212 --sequence-length 4 --out "$OUT/val-empty" "${LOOKS[@]}" --lesions 0
for area in ${AREAS//,/ }; do
  for set in val val-empty; do
    echo "== min_finding_area_mm2 = $area: $set"
    log="$OUT/$set-$area.log"
    if ! "$BIN" eval "$OUT/$set" --model "$MODEL" --min-finding-area-mm2 "$area" --json "$OUT/$set-$area.json" >"$log" 2>&1; then
      echo "finding-area-sweep: sonoflow eval failed on $OUT/$set at $area mm² (its output, $log):" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    grep '^all' "$log"
  done
done
python3 - "$OUT" "$AREAS" "$MODEL" <<'PY'
import json, pathlib, sys
out, areas, model = pathlib.Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
rows = []
for a in areas:
    val = json.loads((out / f"val-{a}.json").read_text())["overall"]
    empty = json.loads((out / f"val-empty-{a}.json").read_text())["overall"]
    c = val["detection_counts"]
    free = val["lesion_free_frames"] + empty["lesion_free_frames"]
    fp_free = val["false_positive_findings"] + empty["false_positive_findings"]
    rows.append({"min_finding_area_mm2": float(a), "true_detections": c["tp"], "false_detections": c["fp"],
                 "missed": c["fn"], "precision": val["detection_precision"], "recall": val["detection_recall"],
                 "lesion_free_frames": free, "false_findings_on_lesion_free_frames": fp_free,
                 "fp_per_100_lesion_free_frames": 100 * fp_free / free if free else None})
(out / "summary.json").write_text(json.dumps({"model": model, "sets": ["val (seed 202)", "val-empty (seed 212)"], "rows": rows}, indent=1) + "\n")
print(f"{'min mm2':>8} {'det P':>6} {'det R':>6} {'TP':>5} {'FP':>5} {'FP/100 lesion-free':>19}")
for r in rows:
    print(f"{r['min_finding_area_mm2']:>8g} {r['precision']:>6.3f} {r['recall']:>6.3f} {r['true_detections']:>5} "
          f"{r['false_detections']:>5} {r['fp_per_100_lesion_free_frames']:>19.2f}")
PY
