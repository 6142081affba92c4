#!/usr/bin/env bash
# Benchmarks (not part of the test suite). Runs:
#  1. the pass-through pipeline: 640x480 at 60 fps, test source to fakesink
#     (pipelines/bench-passthrough.toml), N frames, report in out/bench/;
#  2. the model pipelines beside the bare-inference floor of the same graphs,
#     in Rust (ort) and Python (onnxruntime), tight and paced at 30 fps: the
#     tiny contract model (pipelines/phantom-tiny-model.toml), then the demo
#     model umind-nano in ROUNDS rounds of [floor paced at 30 fps, raw
#     pipeline (pipelines/bench-umind-raw.toml: preprocess + encoder +
#     decoder), whole product (pipelines/bench-umind.toml)], summed up by
#     benches/ratios.py (per-round ratios and their medians, out/bench/ratios.json);
#  3. the criterion benches of the pipeline's own pieces, the phantom, and
#     post-processing and the overlay at 640x480 and 1920x1080.
# Usage: scripts/bench.sh [--frames N (300)] [--rounds N (8)] [--no-criterion]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
frames=300; rounds=8; criterion=1
while [ "$#" -gt 0 ]; do
  case "$1" in
    --frames) frames="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --no-criterion) criterion=0; shift ;;
    *) echo "unknown argument $1 (use --frames N, --rounds N, --no-criterion)" >&2; exit 2 ;;
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
# The tiny contract model beside the bare floor of its graphs (runtime cost
# around a model that takes a fraction of a millisecond).
./target/release/sonoflow run pipelines/phantom-tiny-model.toml --frames "$frames" --quiet --stats-json out/bench/phantom-tiny-model.json
python3 - out/bench/phantom-tiny-model.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
i, p = r["inference"], r["stages"]["process"]
print(f"\nmodel pipeline ({i['model']}, providers {i['providers']}): preprocess + encoder + decoder p50 {i['model_ms']['p50']:.3f} ms "
      f"p99 {i['model_ms']['p99']:.3f} ms max {i['model_ms']['max']:.3f} ms; process stage p50 {p['p50_ms']:.3f} ms p99 {p['p99_ms']:.3f} ms "
      f"(postprocess {i['postprocess_ms']['p50']:.3f}); allocations/frame {r['allocations_per_frame']}, dropped {sum(r['dropped'].values())}")
PY
cargo bench --locked -q -p sonoflow-benches --bench floor -- tests/fixtures/tiny-model "$frames" cpu
cargo bench --locked -q -p sonoflow-benches --bench floor -- tests/fixtures/tiny-model "$frames" cpu 30
"$SONOFLOW_VENV/bin/python" benches/bare_floor.py tests/fixtures/tiny-model "$frames"

# The demo model umind-nano: rounds of the floor paced at 30 fps, the raw
# pipeline and the whole product, one right after the other, and a last floor,
# so that drift of a shared machine's speed hits both sides of each ratio alike.
cargo bench --locked -q -p sonoflow-benches --bench floor -- onnx/umind-nano "$frames" cpu 0 "$ROOT/out/bench/floor-tight.json"
"$SONOFLOW_VENV/bin/python" benches/bare_floor.py onnx/umind-nano "$frames" 0 out/bench/floor-python.json
"$SONOFLOW_VENV/bin/python" benches/bare_floor.py onnx/umind-nano "$frames" 30 out/bench/floor-python-paced.json
for round in $(seq 1 "$rounds"); do
  echo "umind-nano round $round of $rounds"
  cargo bench --locked -q -p sonoflow-benches --bench floor -- onnx/umind-nano "$frames" cpu 30 "$ROOT/out/bench/floor-paced-$round.json"
  ./target/release/sonoflow run pipelines/bench-umind-raw.toml --frames "$frames" --quiet --stats-json "out/bench/umind-raw-$round.json"
  ./target/release/sonoflow run pipelines/bench-umind.toml --frames "$frames" --quiet --stats-json "out/bench/umind-$round.json"
done
cargo bench --locked -q -p sonoflow-benches --bench floor -- onnx/umind-nano "$frames" cpu 30 "$ROOT/out/bench/floor-paced-$((rounds + 1)).json"
python3 benches/ratios.py out/bench "$rounds"
if [ "$criterion" -eq 1 ]; then
  cargo bench --locked -p sonoflow-benches
fi
