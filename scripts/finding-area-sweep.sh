#!/usr/bin/env bash
# How `[perception] min_finding_area_mm2` trades false findings for missed
# lesions, on validation phantom frames only (never the held-out ones the
# model card reports): scripts/perception-sweep.sh over
# `sonoflow eval --min-finding-area-mm2 A` for each area A. Writes
# --out/summary.json (default out/finding-area) and prints a table.
# Not part of the test suite.
# Usage: scripts/finding-area-sweep.sh [--areas 0,1,2,3,4,6,8] [--model DIR] [--out DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AREAS=0,1,2,3,4,6,8 MODEL=onnx/umind-nano OUT=out/finding-area
while [ "$#" -gt 0 ]; do
  case "$1" in
    --areas) AREAS="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --areas A,B,..., --model DIR, --out DIR)" >&2; exit 2 ;;
  esac
done
exec "$ROOT/scripts/perception-sweep.sh" --flag min-finding-area-mm2 --values "$AREAS" --model "$MODEL" --out "$OUT"
