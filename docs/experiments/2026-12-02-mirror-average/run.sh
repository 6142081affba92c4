#!/usr/bin/env bash
# Test-time mirroring ([model] mirror_average) against the same umind-nano without it, paired on the
# same frames: the held-out set (onnx/train.sh's test, test-single, test-empty, test-empty-more,
# linked as evaluate.py links them), the plane-wave stress set (stress-look + stress-look-empty)
# and the contrast stress set, every lesion counted and with lesions under conspicuity 4 counted
# neither way; then what it costs per frame, side by side on one core (bench-model-cost.sh).
# Makes the phantom exports it needs with onnx/train.sh's commands (out/umind-data-v12) when they
# are missing. Needs a release sonoflow and a Python with numpy and pillow (PY, default
# onnx/.venv/bin/python; umind.link needs no PyTorch). About 25 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
source scripts/env.sh
PY=$(realpath -s "${PY:-onnx/.venv/bin/python}")
D=docs/experiments/2026-12-02-mirror-average
DATA=out/umind-data-v12
W=out/mirror-average
BIN=target/release/sonoflow
mkdir -p "$W"
export_split() { # name seed frames sequence-length [extra args], as onnx/train.sh
  local name=$1 seed=$2 frames=$3 length=$4; shift 4
  [[ -f $DATA/$name/manifest.json ]] && return
  echo "== phantom export: $name"
  "$BIN" phantom export --frames "$frames" --seed "$seed" --sequence-length "$length" --out "$DATA/$name" "$@" > /dev/null
}
LOOKS=(--randomise --looks focused,harmonic --contrast-bands=-40:4,7:12)
PLANE_WAVE=(--randomise --looks plane_wave --contrast-bands=-40:12)
export_split test 203 480 4 "${LOOKS[@]}"
export_split test-empty 213 240 4 "${LOOKS[@]}" --lesions 0
export_split test-empty-more 214 1200 4 "${LOOKS[@]}" --lesions 0
export_split test-single 215 1200 4 "${LOOKS[@]}" --lesions 1
export_split stress-look 301 240 4 "${PLANE_WAVE[@]}"
export_split stress-look-empty 314 1200 4 "${PLANE_WAVE[@]}" --lesions 0
export_split stress-contrast 302 240 4 --randomise --looks focused,harmonic --contrast-bands=4:7
link() { # folder exports...: one dataset, as evaluate.py writes it
  local out=$1; shift
  rm -rf "$out"
  (cd onnx && "$PY" -m umind.link "../$out" "${@/#/../}")
}
link "$W/heldout" $DATA/test $DATA/test-single $DATA/test-empty $DATA/test-empty-more
link "$W/planewave" $DATA/stress-look $DATA/stress-look-empty
link "$W/contrast" $DATA/stress-contrast
for set in heldout planewave contrast; do
  echo "== $set"
  "$BIN" eval "$W/$set" --mirror-average --baseline onnx/umind-nano \
    --json "$W/$set.json" > "$D/$set.txt"
  "$BIN" eval "$W/$set" --mirror-average --baseline onnx/umind-nano --ignore-faint-below 4 \
    --json "$W/$set-cut4.json" > "$D/$set-cut4.txt"
done
scripts/bench-model-cost.sh --mirror-after --rounds 3 --out "$W/cost"
cp "$W/cost/summary.json" "$D/model-cost.json"
