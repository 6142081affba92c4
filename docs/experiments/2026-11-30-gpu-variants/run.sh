#!/usr/bin/env bash
# Issue 18 experiments on the GPU machine: phantom export (train splits + val), caches, then
# training variants side by side on one GPU. Results (fp16 checkpoints, logs) to $OUT.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
EXP=$PWD
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
SMOKE=${SMOKE:-0}; DEVICE=${DEVICE:-cuda}; STEPS=${STEPS:-4000}; GUARD=${GUARD:-380}
W=/tmp/w; mkdir -p $W/b
t0=$SECONDS; stamp() { echo "[$((SECONDS - t0)) s] $*"; }
python3 -c "import tarfile; tarfile.open('$EXP/bundle.tar.xz').extractall('$W/b')"
export LD_LIBRARY_PATH=$W/b/lib
BIN=$W/b/bin/sonoflow
D=$W/data
n() { if [ "$SMOKE" = 1 ]; then echo 8; else echo "$1"; fi; }
LOOKS=(--randomise --looks focused,harmonic --contrast-bands=-40:4,7:12)
stamp export
$BIN phantom export --frames "$(n 7200)" --seed 201 --sequence-length 4 --out $D/train "${LOOKS[@]}" >/dev/null || exit 1
$BIN phantom export --frames "$(n 900)" --seed 211 --sequence-length 4 --out $D/train-empty "${LOOKS[@]}" --lesions 0 >/dev/null || exit 1
$BIN phantom export --frames "$(n 2400)" --seed 101 --sequence-length 12 --out $D/train-plain >/dev/null || exit 1
$BIN phantom export --frames "$(n 480)" --seed 202 --sequence-length 4 --out $D/val "${LOOKS[@]}" >/dev/null || exit 1
stamp caches
UMIND_SIZE=256 python3 cache.py $D 8 & UMIND_SIZE=320 python3 cache.py $D 8 & wait
ls -la $D/cache
stamp train
# name size deep batch
VARIANTS=${VARIANTS:-"A:256:0:16 B:256:0:64 C:256:1:16 D:320:0:16 E:256:1:64 F:320:0:64"}
for v in $VARIANTS; do
  IFS=: read -r name size deep batch <<<"$v"
  (UMIND_SIZE=$size UMIND_DEEP=$deep PYTHONUNBUFFERED=1 timeout "$GUARD" python3 -m umind.train --data $D --out $W/$name \
     --steps "$STEPS" --batch "$batch" --seed 7 --device "$DEVICE" --threads 2 > $W/$name.log 2>&1; echo "exit $?" >> $W/$name.log) &
done
while [ "$(jobs -r | wc -l)" -gt 0 ]; do sleep 30; stamp "$(for v in $VARIANTS; do printf '%s:%s ' "${v%%:*}" "$(grep -o '"step": [0-9]*' $W/${v%%:*}.log | tail -n1 | grep -o '[0-9]*$')"; done)"; done
stamp packing
for v in $VARIANTS; do
  name=${v%%:*}
  mkdir -p $W/pack/$name && cp $W/$name.log $W/$name/tokenizer.json $W/pack/$name/ 2>/dev/null
  cp $W/$name/train-log.json $W/pack/$name/ 2>/dev/null
  python3 fp16.py $W/$name/checkpoint.pt $W/pack/$name/checkpoint16.pt
  tar -cf "$OUT/$name.tar" -C $W/pack "$name"
done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null
stamp done
ls -la "$OUT"
