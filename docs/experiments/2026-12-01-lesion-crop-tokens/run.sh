#!/usr/bin/env bash
# Experiment: lesion-crop region tokens, trained on the visible-margins phantom (v5).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."  # the repository, with model.diff applied; out/umind-data-v5 as exported by train.sh with ../2026-11-30-visible-margins/code.diff
source scripts/env.sh >/dev/null 2>&1
BIN=target/release/sonoflow
DATA=out/umind-data-v5
cd onnx
PY=.venv/bin/python
date; echo "== training"
$PY -m umind.train --data ../$DATA --out ../out/rt-train --steps 4000 --seed 7
date; echo "== base export"
$PY -m umind.export --checkpoint ../out/rt-train/checkpoint.pt --data ../$DATA --out ../out/rt-base
date; echo "== finetune"
$PY -m umind.finetune --checkpoint ../out/rt-train/checkpoint.pt --data ../$DATA --out ../out/rt-tasks --steps 500 --seed 11
$PY -m umind.finetune --checkpoint ../out/rt-tasks/checkpoint.pt --data ../$DATA --out ../out/rt-tasks2 --steps 600 --lr 3e-4 --seed 12 --class-share 0.7 --both-share 0.7
date; echo "== export"
$PY -m umind.export --checkpoint ../out/rt-tasks2/checkpoint.pt --data ../$DATA --out ../out/rt-nano --default-kernels ../out/rt-base/default_kernels.f32
cd ..
"$BIN" model check out/rt-nano
date; echo "== eval"
(cd onnx && $PY -m umind.evaluate --model ../out/rt-nano --bin ../$BIN --data ../$DATA/test ../$DATA/test-empty \
  --stress "plain phantom (the original look)=../$DATA/test-plain" \
  --stress "plane-wave look=../$DATA/stress-look" \
  --stress "contrast +4 to +7 dB=../$DATA/stress-contrast" \
  --out ../out/rt-nano/metrics.json)
date; echo "== done"
