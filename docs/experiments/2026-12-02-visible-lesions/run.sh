#!/usr/bin/env bash
# Scores the shipped umind-nano on the held-out frames with every lesion counted, and with lesions
# under conspicuity 4 and 6 counted neither way (sonoflow eval --ignore-faint-below), then sorts its
# false boxes and misses (fp_kinds.py, misplaced.py). Needs out/conspicuity/heldout
# (../2026-12-01-conspicuity/run.sh) and a release sonoflow. About 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
source scripts/env.sh
D=docs/experiments/2026-12-02-visible-lesions
W=out/conspicuity
target/release/sonoflow eval $W/heldout --model onnx/umind-nano --json $W/shipped-all.json \
  --findings-jsonl $W/shipped-findings.jsonl > $D/shipped-all.txt
for z in 4 6; do
  target/release/sonoflow eval $W/heldout --model onnx/umind-nano --ignore-faint-below $z \
    --json $W/shipped-cut$z.json > $D/shipped-cut$z.txt
done
{
  python3 $D/fp_kinds.py $W/shipped-findings.jsonl $W/heldout/truth.jsonl
  echo "-- lesions under conspicuity 4 apart:"
  python3 $D/fp_kinds.py $W/shipped-findings.jsonl $W/heldout/truth.jsonl 4
  echo "-- boxes at IoU 0.1-0.5:"
  python3 $D/misplaced.py $W/shipped-findings.jsonl $W/heldout/truth.jsonl
} > $D/where.txt
