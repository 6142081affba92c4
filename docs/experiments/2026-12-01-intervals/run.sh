#!/usr/bin/env bash
# The paired comparisons of this folder's README: the shipped umind-nano
# against the model before it (6557a47) and against the four second stages of
# ../2026-12-01-stage-after-the-schedule, on the held-out set and on the
# plane-wave look, with `sonoflow eval --baseline`.
# Needs: out/umind-data-v12 (onnx/train.sh makes it), the stages' base exports
# in out/umind-hn{,2,3,4}-base (that experiment's run.sh), a release sonoflow,
# and onnx/.venv. About 25 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
source scripts/env.sh
D=docs/experiments/2026-12-01-intervals
DATA=out/umind-data-v12
WORK=out/intervals
mkdir -p "$WORK/old-model"
for f in decoder.onnx default_kernels.f32 embed_tokens.onnx kernel_projector.onnx mask_decoder.onnx \
         sonoflow-model.toml tokenizer.json vision_encoder.onnx; do
  git show "6557a47:onnx/umind-nano/$f" > "$WORK/old-model/$f"
done
# One dataset per comparison, linked together as evaluate.py links train.sh's
# held-out exports (each export's sequences stay scenes of their own).
combine() { # out export...
  local out=$1; shift
  rm -rf "$out"
  (cd onnx && .venv/bin/python -m umind.link "../$out" "${@/#/../}")
}
combine "$WORK/heldout" $DATA/test $DATA/test-single $DATA/test-empty $DATA/test-empty-more
combine "$WORK/planewave" $DATA/stress-look $DATA/stress-look-empty
for base in "$WORK/old-model" out/umind-hn-base out/umind-hn3-base out/umind-hn4-base out/umind-hn2-base; do
  name=$(basename "$base")
  for set in heldout planewave; do
    target/release/sonoflow eval "$WORK/$set" --model onnx/umind-nano --baseline "$base" \
      --json "$WORK/pair-$set-$name.json" | tail -4 | tee "$D/pair-$set-$name.txt"
  done
done
# pairs.json: each comparison's overall figures and difference, from the --json above.
onnx/.venv/bin/python - "$WORK" "$D/pairs.json" <<'PY'
import glob, json, os, sys
work, out = sys.argv[1], sys.argv[2]
pairs = {}
for f in sorted(glob.glob(f"{work}/pair-*.json")):
    m = json.load(open(f))
    name = os.path.basename(f)[5:-5]
    pairs[name] = {
        "dataset": "held-out (test, test-single, test-empty, test-empty-more)" if name.startswith("heldout")
        else "plane-wave look (stress-look, stress-look-empty)",
        "model": m["model"], "baseline": m["baseline"]["model"],
        "this": m["overall"], "baseline_figures": m["baseline"]["overall"], "difference": m["difference"],
    }
json.dump(pairs, open(out, "w"), indent=1)
PY
