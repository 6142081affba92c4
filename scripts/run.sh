#!/usr/bin/env bash
# The main job: set up what is missing, then run the default live pipeline
# with its live status line. With no arguments it runs 300 frames (10 s) and
# writes out/default.mp4 and out/default-stats.json; any arguments are passed
# to `sonoflow run` instead (e.g. `scripts/run.sh pipelines/x.toml --frames 600`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
if [ "$#" -eq 0 ]; then
  set -- --frames 300 --stats-json out/default-stats.json
fi
exec "$ROOT/target/release/sonoflow" run "$@"
