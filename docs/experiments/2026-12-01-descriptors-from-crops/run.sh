#!/usr/bin/env bash
# Experiment: descriptors from a crop of the lesion (issue 18). Needs the lesion-crop experiment's
# trained folders (out/rt-tasks2, out/rt-base; ../2026-12-01-lesion-crop-tokens/run.sh) and the
# visible-margins exports (out/umind-data-v5). Works on a scratch copy of onnx/, never on the
# repository's own onnx/umind.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
HERE=$REPO/docs/experiments/2026-12-01-descriptors-from-crops
DATA=$REPO/out/umind-data-v5
PY=$REPO/onnx/.venv/bin/python
BIN=$REPO/target/release/sonoflow
source "$REPO/scripts/env.sh" >/dev/null 2>&1

# 1. Can the descriptors be told apart on crops around the TRUE box? (13 min each)
$PY "$HERE/crops.py" "$DATA" > "$HERE/crops-full-resolution.log"
DOWN=3 $PY "$HERE/crops.py" "$DATA" > "$HERE/crops-third-resolution.log"
BALANCED=0 $PY "$HERE/crops.py" "$DATA" > "$HERE/crops-plain-loss.log"

# 2. A scratch copy of onnx/ with the lesion crop (crop) and, beside it, the mask window (maskwin).
WORK=$(mktemp -d)
for v in crop maskwin; do
  mkdir -p "$WORK/$v" && cp -r "$REPO/onnx/umind" "$WORK/$v/umind" && ln -s "$REPO/onnx/.venv" "$WORK/$v/.venv"
  (cd "$WORK/$v" && patch -p2 < "$REPO/docs/experiments/2026-12-01-lesion-crop-tokens/model.diff" \
     && patch -p2 < "$HERE/finetune.diff")
  cp "$HERE/pretrain_crop.py" "$HERE/window_eval.py" "$HERE/visibility.py" "$HERE/crop_reader.py" "$WORK/$v/"
done
(cd "$WORK/maskwin" && patch -p2 < "$HERE/window.diff")

run() {  # variant, out-prefix, extra environment
  local v=$1 o=$2
  cd "$WORK/$v"
  {
  $PY -m umind.finetune --checkpoint "$REPO/out/rt-tasks2/checkpoint.pt" --data "$DATA" --out "$REPO/out/$o-tasks" \
    --steps 800 --seed 13 --crop-cnn "$REPO/out/pt-cnn.pt"
  $PY -m umind.export --checkpoint "$REPO/out/$o-tasks/checkpoint.pt" --data "$DATA" --out "$REPO/out/$o-nano" \
    --default-kernels "$REPO/out/rt-base/default_kernels.f32"
  "$BIN" model check "$REPO/out/$o-nano"
  $PY -m umind.evaluate --model "$REPO/out/$o-nano" --bin "$BIN" --data "$DATA/test" "$DATA/test-empty" \
    --stress "plain phantom (the original look)=$DATA/test-plain" --stress "plane-wave look=$DATA/stress-look" \
    --stress "contrast +4 to +7 dB=$DATA/stress-contrast" --out "$REPO/out/$o-nano/metrics.json"
  } > "$WORK/$o.log" 2>&1
  $PY "$REPO/docs/experiments/2026-11-30-visible-margins/attrs.py" "$REPO/out/$o-nano" "$DATA/test" 480 "$WORK/$o-rows.json"
}

# 3. The crop CNN pretrained on the descriptors at true-mask windows (2000 steps, 6 min).
(cd "$WORK/crop" && $PY pretrain_crop.py "$DATA" "$REPO/out/rt-tasks2/checkpoint.pt" "$REPO/out/pt-cnn.pt" 2000) > "$HERE/pretrain.log"
# 4. Where each window falls, and the pretrained CNN read there.
(cd "$WORK/maskwin" && WINDOW_KERNELS="$REPO/out/rt-base/default_kernels.f32" $PY window_eval.py "$DATA/test" \
   "$REPO/out/rt-tasks2/checkpoint.pt" "$REPO/out/pt-cnn.pt" "$REPO/out/rt-base/default_kernels.f32") > "$HERE/windows.txt"
# 4b. How visible each held-out lesion is, and the CNN's reading by visibility; a contact sheet per margin.
(cd "$WORK/crop" && $PY visibility.py "$DATA/test" "$REPO/out/rt-tasks2/checkpoint.pt" "$REPO/out/pt-cnn.pt") > "$HERE/visibility.txt"
$PY "$HERE/margins-sheet.py" "$DATA/train" "$HERE/margins-v5.jpg"
# 5. The language model fine-tuned to read it: saliency window, then the mask window.
(run crop pt) > "$HERE/confusions-pretrained-cnn.txt"
(export WINDOW_KERNELS="$REPO/out/rt-base/default_kernels.f32"; run maskwin mw) > "$HERE/confusions-mask-window.txt"

# 6. The phantom drawn as named: v5's code.diff and drawn-as-named.diff applied to the phantom only for the
#    export (revert both and rebuild afterwards), the v5 export commands into out/umind-data-v6, crops.py on it.
LOOKS=(--randomise --looks focused,harmonic --contrast-bands=-40:4,7:12)
# The phantom with code.diff, drawn-as-named.diff and then the named diffs applied, exported with the v5
# commands into a data folder; then the phantom reverted and the binary rebuilt.
draw_and_export() {  # data folder, diffs on top of drawn-as-named.diff
  local out=$1; shift
  (cd "$REPO" && git apply --include='crates/*' docs/experiments/2026-11-30-visible-margins/code.diff \
     && git apply "$HERE/drawn-as-named.diff" && for d in "$@"; do git apply "$HERE/$d"; done \
     && cargo build --release --locked -p sonoflow --quiet)
  "$BIN" phantom export --frames 7200 --seed 201 --sequence-length 4 --out "$out/train" "${LOOKS[@]}"
  "$BIN" phantom export --frames 480 --seed 203 --sequence-length 4 --out "$out/test" "${LOOKS[@]}"
  (cd "$REPO" && git checkout crates/phantom/src/scene.rs && cargo build --release --locked -p sonoflow --quiet)
}
draw_and_export "$REPO/out/umind-data-v6"
$PY "$HERE/crops.py" "$REPO/out/umind-data-v6" > "$HERE/crops-drawn-as-named.log"
$PY "$HERE/margins-sheet.py" "$REPO/out/umind-data-v6/train" "$HERE/margins-drawn-as-named.jpg"
(cd "$WORK/crop" && $PY visibility.py "$REPO/out/umind-data-v6/test" "$REPO/out/rt-tasks2/checkpoint.pt" "$REPO/out/pt-cnn.pt") \
  > "$HERE/visibility-drawn-as-named.txt"

# 7. The margins drawn apart (margins-apart.diff on top of both), then with a floor in millimetres on the
#    margin's detail (detail-floors.diff on top of that): each exported as in 6 (out/umind-data-v7, -v8) and
#    read by crops.py with both losses.
draw_and_export "$REPO/out/umind-data-v7" margins-apart.diff
$PY "$HERE/crops.py" "$REPO/out/umind-data-v7" > "$HERE/crops-margins-apart.log"
BALANCED=0 $PY "$HERE/crops.py" "$REPO/out/umind-data-v7" > "$HERE/crops-margins-apart-plain-loss.log"
$PY "$HERE/margins-sheet.py" "$REPO/out/umind-data-v7/train" "$HERE/margins-apart.jpg"
draw_and_export "$REPO/out/umind-data-v8" margins-apart.diff detail-floors.diff
$PY "$HERE/crops.py" "$REPO/out/umind-data-v8" > "$HERE/crops-detail-floors.log"
BALANCED=0 $PY "$HERE/crops.py" "$REPO/out/umind-data-v8" > "$HERE/crops-detail-floors-plain-loss.log"
# 8. Coarser floors still (coarser-floors.diff on top: corners >= 1.5 mm, spicules >= 2.5 mm, lobes >= 0.8 mm
#    deep and 2.5 mm apart) into out/umind-data-v9, the class-balanced loss only.
draw_and_export "$REPO/out/umind-data-v9" margins-apart.diff detail-floors.diff coarser-floors.diff
$PY "$HERE/crops.py" "$REPO/out/umind-data-v9" > "$HERE/crops-coarser-floors.log"
