#!/usr/bin/env bash
# This folder's figures: the searcher's bound per set (bound.txt), recall within each conspicuity
# band (within.txt) and the agreement of the Rust measurement with the Python cross-check
# (agreement.txt). Needs: out/umind-data-v12's held-out and stress exports written by this commit's
# sonoflow (onnx/train.sh's commands; an older export's truth has no conspicuity: re-make it with the
# command in its export-command.json, the images come out the same), a release sonoflow and onnx/.venv.
# About 10 minutes on 2 cores (the cross-check is most of it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
source scripts/env.sh
D=docs/experiments/2026-12-01-conspicuity
DATA=out/umind-data-v12
WORK=out/conspicuity
mkdir -p "$WORK"
for s in "test test-single" test-plain stress-look stress-contrast; do
  echo "== $s"
  python3 $D/bound.py $(for x in $s; do echo "$DATA/$x"; done)
done > $D/bound.txt
# The held-out set linked as evaluate.py links it, and the shipped model's findings on it.
rm -rf "$WORK/heldout"
(cd onnx && .venv/bin/python -m umind.link "../$WORK/heldout" \
  ../$DATA/test ../$DATA/test-single ../$DATA/test-empty ../$DATA/test-empty-more)
target/release/sonoflow eval "$WORK/heldout" --findings-jsonl "$WORK/heldout-findings.jsonl" > /dev/null
python3 $D/within.py "$WORK/heldout" "$WORK/heldout-findings.jsonl" > $D/within.txt
onnx/.venv/bin/python $D/crosscheck.py $DATA/test-single > "$WORK/crosscheck-test-single.jsonl"
python3 $D/agreement.py $DATA/test-single "$WORK/crosscheck-test-single.jsonl" > $D/agreement.txt
