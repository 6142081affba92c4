#!/usr/bin/env bash
# The second stage of this folder's README that leaves faint lesions (conspicuity under 4) out of the
# mask losses, and its paired comparisons. Needs: out/umind-data-v12 from onnx/train.sh with train,
# train-empty and train-plain re-made by this commit's sonoflow (the commands in their
# export-command.json; the images come out the same, the truth gains the conspicuity), its training
# cache, out/umind-train/checkpoint.pt (train.sh's first stage), the control stage's base export
# out/umind-hn3-base (../2026-12-01-stage-after-the-schedule/run.sh, "control-seed13": the same
# stage without the masks), out/conspicuity/heldout (run.sh), a release sonoflow and onnx/.venv.
# About 20 minutes on 2 cores (12 of training).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
source scripts/env.sh
D=docs/experiments/2026-12-01-conspicuity
W=out/conspicuity
git apply $D/faint-stage.diff
trap 'git apply -R $D/faint-stage.diff' EXIT
onnx/.venv/bin/python $D/faint_masks.py --data out/umind-data-v12 --below 4 --out out/faint4.npz
(cd onnx && .venv/bin/python -m umind.train --data ../out/umind-data-v12 --out ../out/umind-faint4 \
   --init ../out/umind-train/checkpoint.pt --steps 400 --lr 2e-4 --seed 13 --ignore ../out/faint4.npz &&
 .venv/bin/python -m umind.export --checkpoint ../out/umind-faint4/checkpoint.pt --data ../out/umind-data-v12 \
   --out ../out/umind-faint4-base)
cp out/umind-faint4/train-log.json $D/faint-stage-train-log.json
rm -rf $W/planewave
(cd onnx && .venv/bin/python -m umind.link ../$W/planewave \
  ../out/umind-data-v12/stress-look ../out/umind-data-v12/stress-look-empty)
target/release/sonoflow eval $W/heldout --model out/umind-faint4-base --baseline out/umind-hn3-base \
  --json $W/pair-heldout-control.json --findings-jsonl $W/faint4-heldout-findings.jsonl > $D/pair-heldout-control.txt
target/release/sonoflow eval $W/planewave --model out/umind-faint4-base --baseline out/umind-hn3-base \
  --json $W/pair-planewave-control.json > $D/pair-planewave-control.txt
target/release/sonoflow eval $W/heldout --model out/umind-faint4-base --baseline onnx/umind-nano \
  --json $W/pair-heldout-shipped.json > $D/pair-heldout-shipped.txt
python3 $D/within.py $W/heldout $W/faint4-heldout-findings.jsonl > $D/faint-stage-within.txt
