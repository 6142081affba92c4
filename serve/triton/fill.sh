#!/usr/bin/env bash
# Fills a Triton model repository from serve/triton/ (configs, the head's
# model.py) and a sonoflow model directory (graphs, manifest, tokenizer):
#
#   OUT/vision_encoder/{config.pbtxt, 1/model.onnx}
#   OUT/mask_decoder/{config.pbtxt, 1/model.onnx}
#   OUT/reasoning_head/{config.pbtxt, 1/model.py, 1/umind_head.py, 1/model/...}
#   OUT/keyframe_report/{config.pbtxt, 1/}          (ensemble: encoder + head)
#
# Usage: serve/triton/fill.sh OUT [--model DIR] [--link]
#   --model  the model directory (default onnx/umind-nano)
#   --link   symlinks instead of copies (for a Triton on this machine; a
#            container that mounts OUT needs the copies, the default)
# Then checks OUT with check_config.py when .venv-serve exists
# (scripts/serve-venv.sh). Re-running replaces what it wrote.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
say()  { printf '\033[1;34m[triton-fill]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[1;31m[triton-fill] error:\033[0m %s\n' "$*" >&2; exit 1; }

OUT="${1:-}"
[ -n "$OUT" ] && [ "${OUT#--}" = "$OUT" ] || fail "usage: serve/triton/fill.sh OUT [--model DIR] [--link]"
shift
MODEL="$ROOT/onnx/umind-nano"
LINK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --link) LINK=1; shift ;;
    *) fail "unknown argument $1" ;;
  esac
done
[ -f "$MODEL/sonoflow-model.toml" ] || fail "$MODEL is not a sonoflow model directory (no sonoflow-model.toml)"
MODEL="$(cd "$MODEL" && pwd)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
case "$OUT" in "$HERE"|"$HERE"/*) fail "OUT must not be inside serve/triton (the templates)" ;; esac

put() {  # put SRC DEST: a copy, or a symlink with --link
  rm -rf "$2"
  if [ "$LINK" = 1 ]; then ln -s "$1" "$2"; else cp -RL "$1" "$2"; fi
}

# The graph file of a role, from the manifest (python3 >= 3.11 has tomllib).
graph_file() {
  python3 - "$MODEL/sonoflow-model.toml" "$1" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(tomllib.load(f)["graphs"][sys.argv[2]]["file"])
PY
}

for role in vision_encoder mask_decoder; do
  mkdir -p "$OUT/$role/1"
  cp "$HERE/$role/config.pbtxt" "$OUT/$role/config.pbtxt"
  put "$MODEL/$(graph_file "$role")" "$OUT/$role/1/model.onnx"
done

mkdir -p "$OUT/reasoning_head/1"
cp "$HERE/reasoning_head/config.pbtxt" "$OUT/reasoning_head/config.pbtxt"
put "$HERE/reasoning_head/1/model.py" "$OUT/reasoning_head/1/model.py"
put "$ROOT/serve/umind_head.py" "$OUT/reasoning_head/1/umind_head.py"
put "$MODEL" "$OUT/reasoning_head/1/model"

mkdir -p "$OUT/keyframe_report/1"
cp "$HERE/keyframe_report/config.pbtxt" "$OUT/keyframe_report/config.pbtxt"

say "filled $OUT from $MODEL ($([ "$LINK" = 1 ] && echo symlinks || echo copies))"
if [ -x "$ROOT/.venv-serve/bin/python" ]; then
  "$ROOT/.venv-serve/bin/python" "$HERE/check_config.py" "$OUT" --model "$MODEL"
else
  say "not checked: no .venv-serve (scripts/serve-venv.sh), then: .venv-serve/bin/python serve/triton/check_config.py $OUT"
fi
