#!/usr/bin/env bash
# The four second stages of this experiment and their evaluation, as they ran
# (then the metrics went to out/ and were copied here; this script writes them here directly).
# Needs: code.diff applied (git apply docs/experiments/2026-12-01-stage-after-the-schedule/code.diff),
# out/umind-data-v12 and out/umind-train/checkpoint.pt from onnx/train.sh as code.diff leaves it
# (the 1500-lesion-free-frame run; about 2 h 15 min on 2 cores), and a release sonoflow.
# About 15 minutes a variant on 2 cores (11 of training, 4 of export and evaluation).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
source scripts/env.sh
D=docs/experiments/2026-12-01-stage-after-the-schedule
cd onnx
PY=.venv/bin/python
DATA=../out/umind-data-v12
variant() { # name out base seed [extra train args]
  local name=$1 out=$2 base=$3 seed=$4; shift 4
  $PY -m umind.train --data $DATA --out ../out/$out --init ../out/umind-train/checkpoint.pt --steps 400 --lr 2e-4 --seed "$seed" "$@"
  # The default kernels of the stage's checkpoint, as train.sh's base export;
  # the task fine-tunes are not run (they freeze the encoder and mask decoder).
  $PY -m umind.export --checkpoint ../out/$out/checkpoint.pt --data $DATA --out ../out/$base
  $PY -m umind.evaluate --model ../out/$base --bin ../target/release/sonoflow \
    --data $DATA/test $DATA/test-empty \
    --stress "plain phantom (the original look)=$DATA/test-plain" \
    --stress "plane-wave look=$DATA/stress-look" \
    --stress "contrast +4 to +7 dB=$DATA/stress-contrast" \
    --out ../$D/$name.json
  cp ../out/$out/train-log.json ../$D/$name-train-log.json
  # Which lesion-free frames get a finding (frame id / 4 = sequence).
  ../target/release/sonoflow eval $DATA/test-empty --model ../out/$base --findings-jsonl ../out/$base-empty-findings.jsonl >/dev/null
}
variant empty50-seed13 umind-hardneg umind-hn-base 13 --empty-share 0.5 --negative-weight 1
variant empty25-seed13 umind-hardneg2 umind-hn2-base 13 --empty-share 0.25 --negative-weight 1
variant control-seed13 umind-hardneg3 umind-hn3-base 13
variant empty50-seed14 umind-hardneg4 umind-hn4-base 14 --empty-share 0.5 --negative-weight 1
cd ..
python3 docs/experiments/2026-12-01-more-lesion-free-frames/compare.py \
  docs/experiments/2026-12-01-drawn-phantom-descriptor-heads/shipped-on-v10.json \
  docs/experiments/2026-12-01-1500-lesion-free-frames/retrained-on-v12.json \
  $D/control-seed13.json $D/empty50-seed13.json $D/empty50-seed14.json $D/empty25-seed13.json
