#!/usr/bin/env bash
# Checks that umind-nano training stopped and resumed gives the weights of an
# unbroken run bit for bit (onnx/umind/train.py --until / --resume), on a small
# phantom export made here, with faint lesions left out of the mask losses
# (--ignore-below). Needs onnx/.venv (onnx/train.sh installs it; the README's
# test command does not, so this is not part of it) and a release sonoflow.
# About a minute on 2 cores.
#
#   scripts/check-train-resume.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh >/dev/null
WORK=${1:-out/check-train-resume}
PY=onnx/.venv/bin/python
[[ -x $PY ]] || { echo "check-train-resume: no $PY: run onnx/train.sh once to install the training venv" >&2; exit 2; }
cargo build --release --locked -p sonoflow --quiet
rm -rf "$WORK"
BIN=target/release/sonoflow
LOOKS=(--randomise --looks focused,harmonic --contrast-bands=-40:4,7:12)
"$BIN" phantom export --frames 80 --seed 201 --sequence-length 4 --out "$WORK/data/train" "${LOOKS[@]}" >/dev/null
"$BIN" phantom export --frames 16 --seed 211 --sequence-length 4 --out "$WORK/data/train-empty" "${LOOKS[@]}" --lesions 0 >/dev/null
"$BIN" phantom export --frames 24 --seed 101 --sequence-length 12 --out "$WORK/data/train-plain" >/dev/null
"$BIN" phantom export --frames 16 --seed 202 --sequence-length 4 --out "$WORK/data/val" "${LOOKS[@]}" >/dev/null
WORK=$(realpath "$WORK")
train() { (cd onnx && .venv/bin/python -m umind.train --data "$WORK/data" --steps 6 --seed 7 --ignore-below 4 "$@"); }
train --out "$WORK/unbroken"
train --out "$WORK/resumed" --until 3
train --out "$WORK/resumed" --resume
# A finished run whose train-log.json went missing writes it again on --resume.
cp "$WORK/resumed/train-log.json" "$WORK/resumed-log.json"
rm "$WORK/resumed/train-log.json"
train --out "$WORK/resumed" --resume
$PY - "$WORK" <<'PY'
import json, sys, torch
a = torch.load(f"{sys.argv[1]}/unbroken/checkpoint.pt")["model"]
b = torch.load(f"{sys.argv[1]}/resumed/checkpoint.pt")["model"]
differ = [k for k in a if not torch.equal(a[k], b[k])]
if differ:
    sys.exit(f"check-train-resume: the resumed run's weights differ from the unbroken run's in {len(differ)} of {len(a)} tensors ({differ[:3]})")
first = json.load(open(f"{sys.argv[1]}/resumed-log.json"))["stages"][0]
again = json.load(open(f"{sys.argv[1]}/resumed/train-log.json"))["stages"][0]
for key in ("log", "segments", "training_seconds", "seconds", "started"):
    if first.get(key) != again.get(key):
        sys.exit(f"check-train-resume: the rewritten train-log.json differs in {key}: {first.get(key)} vs {again.get(key)}")
print(f"check-train-resume: {len(a)} tensors identical after 3 + 3 steps and 6 unbroken; the log rewritten from the state")
PY
