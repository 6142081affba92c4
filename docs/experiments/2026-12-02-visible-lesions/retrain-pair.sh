#!/usr/bin/env bash
# The retrained model against the shipped umind-nano, paired, on the held-out and plane-wave frames,
# with every lesion counted and with lesions under conspicuity 4 counted neither way.
# Usage: retrain-pair.sh MODEL_DIR (the retrain's out/umind-base: its per-frame path is the final
# model's, as the fine-tunes after it freeze the encoder and the mask decoder and keep its default
# kernels). Needs out/conspicuity/{heldout,planewave} (../2026-12-01-conspicuity/run.sh) and a
# release sonoflow. About 9 minutes on 2 cores.
set -euo pipefail
NEW=$(realpath "${1:?usage: retrain-pair.sh MODEL_DIR, the out/umind-base of the retrain}")
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
source scripts/env.sh
D=docs/experiments/2026-12-02-visible-lesions
W=out/conspicuity
for set in heldout planewave; do
  target/release/sonoflow eval $W/$set --model "$NEW" --baseline onnx/umind-nano \
    --json $W/retrain-$set.json > $D/retrain-$set.txt
  target/release/sonoflow eval $W/$set --model "$NEW" --baseline onnx/umind-nano --ignore-faint-below 4 \
    --json $W/retrain-$set-cut4.json > $D/retrain-$set-cut4.txt
done
