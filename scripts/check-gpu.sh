#!/usr/bin/env bash
# The inference engine's GPU paths (TensorRT -> CUDA -> CPU), checked on the
# machine at hand. Not part of the test suite: it installs ONNX Runtime's GPU
# build, which the README's two commands never do.
#
#  1. Installs onnxruntime-gpu==$ORT_VERSION (built for CUDA 13; its TensorRT and CUDA
#     providers, without CUDA, cuDNN or TensorRT themselves) into .venv-gpu.
#     With --cuda-libs it also installs the CUDA and cuDNN wheels the build
#     names (its [cuda,cudnn] extras) and puts them on LD_LIBRARY_PATH;
#     TensorRT's libnvinfer must come from the system (or LD_LIBRARY_PATH).
#  2. `sonoflow model check onnx/umind-nano` on that library: which provider
#     each graph lands on, and why each one before it was skipped.
#  3. `--require-provider tensorrt` and `cuda`: either every graph runs there,
#     or the check fails and says why (no GPU, a missing library).
#  4. Where a provider works: the bare-inference floor on it (TensorRT FP16,
#     TensorRT FP32, CUDA; CPU beside them), the TensorRT engine build cold
#     (empty cache) and cached (the session load times), and the raw and
#     whole pipelines on it (pipelines/bench-umind-raw.toml, bench-umind.toml).
#  5. With --stream-clients, where CUDA works: the results stream's load
#     bench (benches/stream_clients.rs: 0, 1, 8, 32 WebSocket clients, 3
#     rounds) on the default pipeline with the model on CUDA and a fake sink
#     instead of the MP4 (out/gpu/stream-default.toml).
# Reports land in out/gpu/. Usage: scripts/check-gpu.sh [--cuda-libs] [--frames N] [--stream-clients]
#
# --prebuilt DIR: on a GPU machine that can fetch nothing (no apt, no PyPI, no
# cargo), use what scripts/gpu-bundle.sh packed here instead of steps 1's
# install and the builds: DIR/bin/{sonoflow,floor}, DIR/lib (their libraries
# and GStreamer plugins), DIR/ort (ONNX Runtime's GPU build). The CUDA and
# cuDNN libraries are taken from that machine's Python packages (nvidia-*).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
frames=600; cuda_libs=0; prebuilt=""; stream_clients=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --cuda-libs) cuda_libs=1; shift ;;
    --frames) frames="$2"; shift 2 ;;
    --prebuilt) prebuilt="$(cd "$2" && pwd)"; shift 2 ;;
    --stream-clients) stream_clients=1; shift ;;
    *) echo "unknown argument $1 (use --cuda-libs, --frames N, --prebuilt DIR, --stream-clients)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1;34m[gpu]\033[0m %s\n' "$*" >&2; }
cd "$ROOT"

# --- 1. ONNX Runtime's GPU build ---------------------------------------------
if [ -n "$prebuilt" ]; then
  [ -x "$prebuilt/bin/sonoflow" ] || { echo "--prebuilt $prebuilt has no bin/sonoflow: make it with scripts/gpu-bundle.sh" >&2; exit 1; }
  say "prebuilt bundle: $(tr '\n' ' ' < "$prebuilt/BUNDLE")"
  ORT_VERSION="$(sed -n 's/^ort //p' "$prebuilt/BUNDLE")"
  export ORT_DYLIB_PATH="$prebuilt/ort/libonnxruntime.so.$ORT_VERSION"
  # CUDA, cuBLAS, cuDNN...: the nvidia-* wheels beside the machine's PyTorch.
  nvidia_libs="$(python3 - <<'PY'
import pathlib, site
dirs = set()
for sp in site.getsitepackages():
    for so in pathlib.Path(sp, "nvidia").glob("**/lib*.so*"):
        dirs.add(str(so.parent))
print(":".join(sorted(dirs)))
PY
)"
  export LD_LIBRARY_PATH="$prebuilt/ort:$prebuilt/lib${nvidia_libs:+:$nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export GST_PLUGIN_SYSTEM_PATH="$prebuilt/lib/gstreamer-1.0" GST_PLUGIN_PATH="" GST_REGISTRY="/tmp/sonoflow-gst-registry.bin" GST_REGISTRY_FORK=no
  sonoflow="$prebuilt/bin/sonoflow"
  floor() { "$prebuilt/bin/floor" "$ROOT/onnx/umind-nano" "$frames" "$1" "$2" "$3"; }
  # The bench runs $ROOT/target/release/sonoflow.
  mkdir -p target/release && cp "$prebuilt/bin/sonoflow" target/release/sonoflow
  clients_bench() { SONOFLOW_ROOT="$ROOT" "$prebuilt/bin/stream_clients" "$@"; }
else
  bash "$ROOT/scripts/bootstrap.sh"
  source "$ROOT/scripts/env.sh"
  GPU_VENV="$ROOT/.venv-gpu"
  [ -x "$GPU_VENV/bin/python" ] || python3 -m venv "$GPU_VENV"
  wheel="onnxruntime-gpu==$ORT_VERSION"
  if [ "$cuda_libs" -eq 1 ]; then
    wheel="onnxruntime-gpu[cuda,cudnn]==$ORT_VERSION"
    "$GPU_VENV/bin/python" -m pip install -q --disable-pip-version-check "$wheel"
  else
    # The library alone: the Python side's dependencies are not needed.
    "$GPU_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$wheel"
  fi
  capi="$(ls -d "$GPU_VENV"/lib/python3*/site-packages/onnxruntime/capi | head -n1)"
  export ORT_DYLIB_PATH="$capi/libonnxruntime.so.$ORT_VERSION"
  [ -f "$ORT_DYLIB_PATH" ] || { echo "the $wheel wheel has no libonnxruntime.so.$ORT_VERSION in $capi" >&2; exit 1; }
  if [ "$cuda_libs" -eq 1 ]; then
    for lib in "$GPU_VENV"/lib/python3*/site-packages/nvidia/*/lib; do
      LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    done
    export LD_LIBRARY_PATH
  fi
  sonoflow=./target/release/sonoflow
  floor() { cargo bench --locked -q -p sonoflow-benches --bench floor -- onnx/umind-nano "$frames" "$@"; }
  clients_bench() { cargo build --release --locked -q -p sonoflow && cargo bench --locked -q -p sonoflow-benches --bench stream_clients -- "$@"; }
fi
say "ONNX Runtime GPU build: $ORT_DYLIB_PATH"
say "its provider libraries: $(cd "$(dirname "$ORT_DYLIB_PATH")" && ls libonnxruntime_providers_*.so | tr '\n' ' ')"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/[gpu] GPU: /' >&2
else
  say "no nvidia-smi: no NVIDIA driver on this machine"
fi

mkdir -p out/gpu

# --- 2. Where each graph lands -----------------------------------------------
say "model check, providers tensorrt,cuda,cpu"
$sonoflow model check onnx/umind-nano | tee out/gpu/check.txt

# --- 3. Requiring each GPU provider ------------------------------------------
working=()
for p in tensorrt cuda; do
  say "model check --require-provider $p"
  if $sonoflow model check onnx/umind-nano --providers "$p" --require-provider "$p" > "out/gpu/require-$p.txt" 2>&1; then
    say "$p: every graph runs on it"
    working+=("$p")
  else
    say "$p: refused, as it must be where it cannot run:"
    tail -n 3 "out/gpu/require-$p.txt" >&2
  fi
done

# --- 4. Figures where a GPU provider works -----------------------------------
if [ "${#working[@]}" -eq 0 ]; then
  say "no GPU provider runs here: nothing to time (CPU figures: scripts/bench.sh)"
  exit 0
fi
pipeline() { # NAME PROVIDER FP16 DEFINITION
  local def="out/gpu/$1.toml" t0 t1
  sed -e "s|^providers = .*|providers = [\"$2\", \"cpu\"]\nrequire_provider = \"$2\"\ntensorrt_fp16 = $3\ncache_dir = \"$ROOT/out/gpu/cache\"|" "$4" > "$def"
  t0="$(date +%s%N)"
  $sonoflow run "$def" --frames "$frames" --quiet --stats-json "out/gpu/$1.json"
  t1="$(date +%s%N)"
  # Start-up (sessions, engine build or cache load, warm-up) is the wall time less the run's own.
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); r['startup_s']=(int(sys.argv[2])-int(sys.argv[3]))/1e9-r['duration_s']; json.dump(r,open(sys.argv[1],'w'))" \
    "out/gpu/$1.json" "$t1" "$t0"
}
floor cpu 30 "$ROOT/out/gpu/floor-cpu.json"
for p in "${working[@]}"; do
  if [ "$p" = tensorrt ]; then
    for fp16 in true false; do
      rm -rf out/gpu/cache
      say "TensorRT fp16=$fp16: engine build, cold (empty cache)"
      pipeline "trt-fp16-$fp16-cold" tensorrt "$fp16" pipelines/bench-umind-raw.toml
      say "TensorRT fp16=$fp16: cached engine"
      pipeline "trt-fp16-$fp16-raw" tensorrt "$fp16" pipelines/bench-umind-raw.toml
      pipeline "trt-fp16-$fp16-whole" tensorrt "$fp16" pipelines/bench-umind.toml
    done
  else
    pipeline cuda-raw cuda false pipelines/bench-umind-raw.toml
    pipeline cuda-whole cuda false pipelines/bench-umind.toml
  fi
  floor "$p" 30 "$ROOT/out/gpu/floor-$p.json"
done
if [ "$stream_clients" -eq 1 ] && [[ " ${working[*]} " == *" cuda "* ]]; then
  say "results stream load: 0/1/8/32 clients, default pipeline on CUDA, fake sink"
  sed -e 's|^providers = .*|providers = ["cuda", "cpu"]\nrequire_provider = "cuda"|' \
      -e 's|^kind = "mp4"|kind = "fake"|' -e '/^path = "out\/default.mp4"/d' \
      pipelines/default.toml > out/gpu/stream-default.toml
  clients_bench out/gpu/stream-default.toml "$frames" 3 out/gpu/stream-clients.json
fi
python3 - out/gpu <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| run | providers | start-up s (engine build or load) | warm-up ms | model_ms p50 / p99 | end to end p50 / p99 | dropped |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for f in sorted(out.glob("*.json")):
    if f.name == "stream-clients.json":
        continue
    r = json.loads(f.read_text())
    if "inference" not in r:
        print(f"| {f.stem} (bare floor) | | | | {r['p50']:.2f} / {r['p99']:.2f} | | |")
        continue
    i, l = r["inference"], r["latency_ms"]
    print(f"| {f.stem} | {i['providers']} | {r['startup_s']:.1f} | {i['warmup_ms']:.0f} | {i['model_ms']['p50']:.2f} / {i['model_ms']['p99']:.2f} "
          f"| {l['p50']:.2f} / {l['p99']:.2f} | {sum(r['dropped'].values())} |")
PY
