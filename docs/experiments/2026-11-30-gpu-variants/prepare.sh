#!/usr/bin/env bash
# Lays out exp/ (git-ignored: add /exp/ to .git/info/exclude) as this experiment ran it:
# onnx/umind with code.diff's knobs (UMIND_SIZE, UMIND_DEEP), the driver scripts, and
# the release sonoflow with its libraries (for the phantom exports on a machine that can
# fetch nothing). Then, on the GPU machine: `OUT=$OUT GUARD=370 bash exp/run.sh` (carry exp).
set -euo pipefail
ROOT="$(git rev-parse --show-toplevel)"; HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
rm -rf exp && mkdir exp && cp -r onnx/umind exp/umind && rm -rf exp/umind/__pycache__
patch -s -p1 -d exp < "$HERE/code.diff"
cp "$HERE"/{run.sh,cache.py,fp16.py,fp32.py} exp/
source scripts/env.sh >/dev/null
cargo build --release --locked -q -p sonoflow
stage="$(mktemp -d)"; mkdir -p "$stage/bin" "$stage/lib"
cp target/release/sonoflow "$stage/bin/" && strip "$stage/bin/sonoflow"
ldd "$stage/bin/sonoflow" | awk '/=> \//{print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
tar -cJf exp/bundle.tar.xz -C "$stage" bin lib
echo "exp/ ready ($(du -sh exp | cut -f1))"
