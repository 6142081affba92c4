#!/usr/bin/env bash
# Architecture invariants, stated as absences (see docs/ARCHITECTURE.md):
# each line is "crate must-not-depend-on...". Fails naming the crate and the dependency.
# Then: no import cycle between the top-level modules of any crate
# (scripts/module_cycles.py; fails naming the cycle and the lines that make it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
rules=(
  "sonoflow-core gstreamer ort tokio"
  "sonoflow-pipeline gstreamer ort tokio"
  "sonoflow-ingest ort tokio"
  "sonoflow-output ort tokio"
  "sonoflow-phantom gstreamer ort tokio"
  "sonoflow-model gstreamer ort tokio"
  "sonoflow-inference gstreamer tokio"
  "sonoflow-perception gstreamer ort tokio sonoflow-inference"
  "sonoflow-dataset gstreamer ort tokio"
  "sonoflow-calibrate gstreamer ort tokio"
  "sonoflow-overlay gstreamer ort tokio sonoflow-inference"
  "sonoflow-reasoning gstreamer gstreamer-app"
  "sonoflow-protocol gstreamer ort tokio"
  "sonoflow-server gstreamer ort sonoflow-inference sonoflow-reasoning sonoflow-pipeline"
  "sonoflow-dicom-export gstreamer ort tokio sonoflow-inference sonoflow-reasoning sonoflow-pipeline"
  "sonoflow-remote gstreamer ort sonoflow-inference sonoflow-reasoning sonoflow-pipeline sonoflow-core"
)
status=0
for rule in "${rules[@]}"; do
  read -r crate banned <<<"$rule"
  deps="$(cargo tree --locked -q -p "$crate" -e normal --prefix none | awk '{print $1}' | sort -u)"
  for b in $banned; do
    if grep -qx "$b" <<<"$deps"; then
      echo "[architecture] $crate must not depend on $b (see docs/ARCHITECTURE.md)" >&2
      status=1
    fi
  done
done
[ "$status" -eq 0 ] && echo "[architecture] ok: ${#rules[@]} crates keep their stated absences" >&2
# No module of any crate may reach itself through `use crate::...` paths.
python3 scripts/module_cycles.py crates/* benches || status=1
exit "$status"
