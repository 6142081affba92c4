#!/usr/bin/env bash
# Packs what scripts/check-gpu.sh --prebuilt needs on a GPU machine that can
# fetch nothing (the device machine this workplace lends): the release
# `sonoflow`, bare-floor and stream-clients bench binaries, the shared libraries and the three
# GStreamer plugins they load (glibc excepted), and ONNX Runtime's GPU build
# (onnxruntime-gpu==$ORT_VERSION from PyPI: the core library, the CUDA and
# TensorRT providers) with its CUDA kernels pruned to one architecture
# (scripts/prune-fatbin.py; Hopper by default) so the whole fits the machine's
# transfer limit. The .tar.xz is cut into parts of at most --part-mib MiB, one
# folder each (.gpu/1, .gpu/2, ...), to carry one per call.
#
#   scripts/gpu-bundle.sh [--arch 90] [--part-mib 38]
#
# On the machine: join the parts, unpack with Python (no xz binary needed),
# then `scripts/check-gpu.sh --prebuilt DIR`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/env.sh >/dev/null
arch=90; part_mib=38
while [ "$#" -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --part-mib) part_mib="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --arch N, --part-mib N)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1;34m[gpu-bundle]\033[0m %s\n' "$*" >&2; }

say "release build: sonoflow and the floor bench"
cargo build --release --locked -q -p sonoflow
bench_bin() { # NAME: the release executable of benches/NAME.rs
  local exe
  exe="$(cargo bench --no-run --locked -p sonoflow-benches --bench "$1" 2>&1 | sed -n 's/.*Executable.*(\(.*\)).*/\1/p' | tail -n1)"
  [ -x "$exe" ] || { echo "could not find the $1 bench executable (cargo bench --no-run printed none)" >&2; exit 1; }
  echo "$exe"
}
floor="$(bench_bin floor)"
stream_clients="$(bench_bin stream_clients)"

stage="$ROOT/out/gpu-bundle/stage"
rm -rf "$stage"; mkdir -p "$stage/bin" "$stage/lib/gstreamer-1.0" "$stage/ort"
cp target/release/sonoflow "$stage/bin/sonoflow"
cp "$floor" "$stage/bin/floor"
cp "$stream_clients" "$stage/bin/stream_clients"
strip "$stage/bin/sonoflow" "$stage/bin/floor" "$stage/bin/stream_clients"
plugins=/usr/lib/x86_64-linux-gnu/gstreamer-1.0
for p in app coreelements videoconvertscale; do cp "$plugins/libgst$p.so" "$stage/lib/gstreamer-1.0/"; done
# Every library the binaries and plugins load, except glibc's own (the
# machine's newer glibc serves those).
ldd "$stage"/bin/* "$stage"/lib/gstreamer-1.0/*.so | awk '/=> \//{print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done

wheel_dir="$ROOT/out/gpu-bundle/wheel"
if ! ls "$wheel_dir"/onnxruntime_gpu-"$ORT_VERSION"-*.whl >/dev/null 2>&1; then
  say "downloading onnxruntime-gpu==$ORT_VERSION (about 250 MB)"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$wheel_dir" "onnxruntime-gpu==$ORT_VERSION"
fi
unpacked="$ROOT/out/gpu-bundle/unpacked"
rm -rf "$unpacked"
unzip -q -o "$wheel_dir"/onnxruntime_gpu-"$ORT_VERSION"-*.whl 'onnxruntime/capi/lib*' -d "$unpacked"
capi="$unpacked/onnxruntime/capi"
cp "$capi/libonnxruntime.so.$ORT_VERSION" "$capi/libonnxruntime_providers_shared.so" "$capi/libonnxruntime_providers_tensorrt.so" "$stage/ort/"
python3 scripts/prune-fatbin.py --keep-arch "$arch" "$capi/libonnxruntime_providers_cuda.so" "$stage/ort/libonnxruntime_providers_cuda.so"
printf 'commit %s\nort %s\nsm_%s\n' "$(git rev-parse --short HEAD)" "$ORT_VERSION" "$arch" > "$stage/BUNDLE"

say "compressing (xz)"
tar -C "$stage" -cf - . | xz -T2 -6 > "$ROOT/out/gpu-bundle/bundle.tar.xz"
rm -rf .gpu; mkdir -p .gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.gpu/' >> .git/info/exclude; }
split -b "${part_mib}M" -d -a 1 "$ROOT/out/gpu-bundle/bundle.tar.xz" "$ROOT/out/gpu-bundle/part-"
n=0
for part in "$ROOT"/out/gpu-bundle/part-*; do
  n=$((n + 1)); mkdir -p ".gpu/$n"; mv "$part" ".gpu/$n/"
done
say "bundle: $(du -h "$ROOT/out/gpu-bundle/bundle.tar.xz" | cut -f1) in $n part(s): $(ls -d .gpu/* | tr '\n' ' ')"
