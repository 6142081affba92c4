#!/usr/bin/env bash
# Benchmarks (not part of the test suite). Runs:
#  1. the pass-through pipeline: 640x480 at 60 fps, test source to fakesink
#     (pipelines/bench-passthrough.toml), 1200 frames, report in out/bench/;
#  2. the model pipelines (pipelines/phantom-tiny-model.toml and
#     pipelines/bench-umind.toml, the demo model) each beside the
#     bare-inference floor of the same graphs, in Rust (ort) and Python
#     (onnxruntime), tight and paced at 30 fps;
#  3. the criterion benches of the pipeline's own pieces, the phantom, and
#     post-processing and the overlay at 640x480 and 1920x1080.
# Usage: scripts/bench.sh [--frames N] [--no-criterion]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
frames=1200; criterion=1
while [ "$#" -gt 0 ]; do
  case "$1" in
    --frames) frames="$2"; shift 2 ;;
    --no-criterion) criterion=0; shift ;;
    *) echo "unknown argument $1 (use --frames N, --no-criterion)" >&2; exit 2 ;;
  esac
done
mkdir -p out/bench
./target/release/sonoflow run pipelines/bench-passthrough.toml --frames "$frames" --stats-json out/bench/passthrough.json
python3 - out/bench/passthrough.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_ms"]
print(f"\npass-through 640x480@60 to fakesink: in {r['fps_in']:.1f} fps, out {r['fps_out']:.1f} fps, "
      f"dropped {sum(r['dropped'].values())}, latency p50 {l['p50']:.3f} ms p99 {l['p99']:.3f} ms max {l['max']:.3f} ms, "
      f"allocations/frame {r['allocations_per_frame']}, CPU {r['cpu']['percent']:.1f}% of one core, RSS {r['max_rss_mib']:.1f} MiB")
PY
# Each model pipeline beside the bare-inference floor of its graphs.
for pair in "phantom-tiny-model:tests/fixtures/tiny-model" "bench-umind:onnx/umind-nano"; do
  def="${pair%%:*}"; model="${pair#*:}"
  ./target/release/sonoflow run "pipelines/$def.toml" --frames "$frames" --quiet --stats-json "out/bench/$def.json"
  python3 - "out/bench/$def.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
i, p = r["inference"], r["stages"]["process"]
print(f"\nmodel pipeline ({i['model']}, providers {i['providers']}): process stage p50 {p['p50_ms']:.3f} ms p99 {p['p99_ms']:.3f} ms "
      f"max {p['max_ms']:.3f} ms (preprocess p50 {i['preprocess_ms']['p50']:.3f}, encoder {i['encoder_ms']['p50']:.3f}, "
      f"decoder {i['decoder_ms']['p50']:.3f}, postprocess {i['postprocess_ms']['p50']:.3f}); end to end p50 {r['latency_ms']['p50']:.3f} ms "
      f"p99 {r['latency_ms']['p99']:.3f} ms; allocations/frame {r['allocations_per_frame']}, dropped {sum(r['dropped'].values())}, "
      f"fps out {r['fps_out']:.1f}; accuracy {r.get('accuracy')}; overlay {r.get('overlay')}")
PY
  cargo bench --locked -q -p sonoflow-benches --bench floor -- "$model" 600 cpu
  cargo bench --locked -q -p sonoflow-benches --bench floor -- "$model" 600 cpu 30
  "$SONOFLOW_VENV/bin/python" benches/bare_floor.py "$model" 600
done
if [ "$criterion" -eq 1 ]; then
  cargo bench --locked -p sonoflow-benches
fi
