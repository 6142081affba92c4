#!/usr/bin/env bash
# How one `sonoflow eval` setting of the perception (a `[perception]` key:
# --flag min-finding-area-mm2, --flag mask-threshold) trades false findings
# for missed lesions, Dice and calipers, on validation phantom frames only
# (never the held-out ones the model card reports): the validation split of
# onnx/train.sh (seed 202) and 400 lesion-free frames of the same looks
# (seed 212), scored by `sonoflow eval --FLAG V [EVAL_ARGS...]` for each
# value V. Writes --out/summary.json and prints a table. Not part of the
# test suite.
# Usage: scripts/perception-sweep.sh --flag FLAG --values A,B,... [--model DIR] [--out DIR] [-- EVAL_ARGS...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FLAG="" VALUES="" MODEL=onnx/umind-nano OUT=""
EXTRA=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --flag) FLAG="$2"; shift 2 ;;
    --values) VALUES="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "perception-sweep: unknown argument $1 (use --flag FLAG --values A,B,... [--model DIR] [--out DIR] [-- EVAL_ARGS...])" >&2; exit 2 ;;
  esac
done
if [ -z "$FLAG" ] || [ -z "$VALUES" ]; then
  echo "perception-sweep: give --flag (a sonoflow eval option without its dashes, e.g. mask-threshold) and --values A,B,..." >&2
  exit 2
fi
OUT=${OUT:-out/sweep-$FLAG}
cd "$ROOT"
bash scripts/bootstrap.sh >/dev/null
source scripts/env.sh
cargo build --release --locked -q -p sonoflow
BIN=target/release/sonoflow
LOOKS=(--randomise --looks focused,harmonic --contrast-bands=-40:4,7:12)
mkdir -p "$OUT"
[ -f "$OUT/val/manifest.json" ] || "$BIN" phantom export --frames 480 --seed 202 --sequence-length 4 --out "$OUT/val" "${LOOKS[@]}"
[ -f "$OUT/val-empty/manifest.json" ] || "$BIN" phantom export --frames 400 --seed 212 --sequence-length 4 --out "$OUT/val-empty" "${LOOKS[@]}" --lesions 0
for value in ${VALUES//,/ }; do
  for set in val val-empty; do
    echo "== --$FLAG $value ${EXTRA[*]}: $set"
    log="$OUT/$set-$value.log"
    if ! "$BIN" eval "$OUT/$set" --model "$MODEL" "--$FLAG" "$value" "${EXTRA[@]}" --json "$OUT/$set-$value.json" >"$log" 2>&1; then
      echo "perception-sweep: sonoflow eval failed on $OUT/$set at --$FLAG $value (its output, $log):" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    grep '^all' "$log"
  done
done
python3 - "$OUT" "$FLAG" "$VALUES" "$MODEL" "${EXTRA[*]}" <<'PY'
import json, pathlib, sys
out, flag, values, model, extra = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), sys.argv[4], sys.argv[5]
key = flag.replace("-", "_")
rows = []
for v in values:
    val = json.loads((out / f"val-{v}.json").read_text())["overall"]
    empty = json.loads((out / f"val-empty-{v}.json").read_text())["overall"]
    c = val["detection_counts"]
    free = val["lesion_free_frames"] + empty["lesion_free_frames"]
    fp_free = val["false_positive_findings"] + empty["false_positive_findings"]
    rows.append({key: float(v), "dice": val["dice_mean"], "true_detections": c["tp"], "false_detections": c["fp"],
                 "missed": c["fn"], "precision": val["detection_precision"], "recall": val["detection_recall"],
                 "long_axis_mae_mm": val["long_axis_mae_mm"], "short_axis_mae_mm": val["short_axis_mae_mm"],
                 "lesion_free_frames": free, "false_findings_on_lesion_free_frames": fp_free,
                 "fp_per_100_lesion_free_frames": 100 * fp_free / free if free else None})
summary = {"model": model, "flag": f"--{flag}", "eval_args": extra, "sets": ["val (seed 202)", "val-empty (seed 212)"], "rows": rows}
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
num = lambda x, f: "-" if x is None else format(x, f)
print(f"{flag:>22} {'Dice':>6} {'det P':>6} {'det R':>6} {'TP':>5} {'FP':>5} {'long MAE':>9} {'FP/100 lesion-free':>19}")
for r in rows:
    print(f"{r[key]:>22g} {num(r['dice'], '.3f'):>6} {num(r['precision'], '.3f'):>6} {num(r['recall'], '.3f'):>6} "
          f"{r['true_detections']:>5} {r['false_detections']:>5} {num(r['long_axis_mae_mm'], '.2f'):>9} "
          f"{num(r['fp_per_100_lesion_free_frames'], '.2f'):>19}")
PY
