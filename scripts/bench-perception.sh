#!/usr/bin/env bash
# Post-processing and the overlay on one thread (criterion,
# benches/perception.rs), summarised into --out/summary.json (default
# out/bench/perception): per bench the median and mean with criterion's 95 %
# confidence bounds, in ms. Not part of the test suite.
# Usage: scripts/bench-perception.sh [--out DIR] [--collect-only]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT=out/bench/perception collect_only=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --collect-only) collect_only=1; shift ;;
    *) echo "unknown argument $1 (use --out DIR, --collect-only)" >&2; exit 2 ;;
  esac
done
cd "$ROOT"
if [ "$collect_only" -eq 0 ]; then
  bash scripts/bootstrap.sh
  source scripts/env.sh
  cargo bench --locked -p sonoflow-benches --bench perception
fi
mkdir -p "$OUT"
python3 - "$OUT" target/criterion/cpu_1thread <<'PY'
import json, pathlib, platform, subprocess, sys
out, root = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
names = ["postprocess_640x480", "overlay_640x480", "postprocess_1920x1080", "overlay_1920x1080"]
benches = {}
for name in names:
    e = root / name / "new" / "estimates.json"
    if not e.is_file():
        sys.exit(f"{e} is missing: run cargo bench -p sonoflow-benches --bench perception first")
    est = json.loads(e.read_text())
    ms = lambda k: {"point": est[k]["point_estimate"] / 1e6,
                    "lower": est[k]["confidence_interval"]["lower_bound"] / 1e6,
                    "upper": est[k]["confidence_interval"]["upper_bound"] / 1e6}
    benches[f"cpu_1thread/{name}"] = {"median_ms": ms("median"), "mean_ms": ms("mean")}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
summary = {"bench": "cargo bench -p sonoflow-benches --bench perception", "cpu": cpu, "commit": commit, "benches": benches}
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
for k, v in benches.items():
    print(f"{k:<36} median {v['median_ms']['point']:.3f} ms ({v['median_ms']['lower']:.3f}-{v['median_ms']['upper']:.3f})")
PY
