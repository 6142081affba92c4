#!/usr/bin/env bash
# fp32 checkpoints and ONNX exports of each device variant (TARS/NAME.tar, from run.sh), then
# sonoflow eval on the held-out and stress sets, into out/gpu-exp.
#   evaluate.sh TARS NAME:INPUT:EXTRA_BLOCKS...   e.g. evaluate.sh /work/.device/1 A:256:0 D:320:0
set -uo pipefail
TARS="$(cd "$1" && pwd)"; shift
cd "$(git rev-parse --show-toplevel)/exp"
source ../scripts/env.sh >/dev/null 2>&1
PY=../onnx/.venv/bin/python
# The exports of onnx/train.sh as of commit bc75d62 (its DATA then).
DATA=$PWD/../out/umind-data-v2
R=$PWD/../out/gpu-exp; mkdir -p $R
[ -f $DATA/cache/train-v2-320.npz ] || UMIND_SIZE=320 nice $PY cache.py $DATA 2
# held-out = test + test-empty as one export
if [ ! -f $R/heldout/truth.jsonl ]; then
  $PY - "$DATA" "$R/heldout" <<'PY'
import sys, pathlib
sys.path.insert(0, '../onnx')
from umind import data, evaluate
root = pathlib.Path(sys.argv[1])
chosen = [(root / s, rec) for s in ['test', 'test-empty'] for rec in data.read_records(root / s)]
evaluate.write_dataset(chosen, sys.argv[2])
print(len(chosen))
PY
fi
for spec in "$@"; do
  IFS=: read -r name size deep <<<"$spec"
  src=$TARS/$name.tar
  mkdir -p $R/$name && tar -xf $src -C $R
  $PY fp32.py $R/$name/checkpoint16.pt $R/$name/checkpoint.pt
  # A run stopped by run.sh's time guard wrote no train-log.json; export.py wants one.
  [ -f $R/$name/train-log.json ] || echo '{"format": 2, "stages": []}' > $R/$name/train-log.json
  [ -f $R/$name-onnx/sonoflow-model.toml ] || UMIND_SIZE=$size UMIND_DEEP=$deep nice $PY -m umind.export --checkpoint $R/$name/checkpoint.pt --data $DATA --out $R/$name-onnx > $R/$name-export.log 2>&1 || { echo "$name export failed"; continue; }
  for set in heldout:$R/heldout plain:$DATA/test-plain look:$DATA/stress-look contrast:$DATA/stress-contrast; do
    s=${set%%:*}; d=${set#*:}
    [ -f $R/$name-$s.json ] || ../target/release/sonoflow eval $d --model $R/$name-onnx --json $R/$name-$s.json > /dev/null 2>&1 || echo "$name $s eval failed"
  done
  echo "$name done $(date +%T)"
done
