#!/usr/bin/env bash
# Idempotent set-up for sonoflow on Debian/Ubuntu: system packages, the pinned
# onnxruntime shared library (from its PyPI wheel, in a project-local venv), the
# DICOM test files (pydicom-data, in the same venv), the KServe v2 server's venv
# (.venv-serve: MLServer, scripts/serve-venv.sh), and the Rust build. Each
# step checks first and does nothing when already done.
#
# Usage: scripts/bootstrap.sh [--no-build]
# Prints `export` lines nowhere; source scripts/env.sh for the variables.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=env.sh
source "$ROOT/scripts/env.sh"

say()  { printf '\033[1;34m[bootstrap]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[1;31m[bootstrap] error:\033[0m %s\n' "$*" >&2; exit 1; }

# --- 1. Debian packages ------------------------------------------------------
APT_PACKAGES=(
  pkg-config build-essential
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  python3 python3-venv python3-pip
  protobuf-compiler
  chromium chromium-driver  # tests/viewer.rs drives headless Chromium against the viewer
  dcmtk  # crates/dicom-export's tests parse the SR with dsrdump
  orthanc  # the PACS the DICOM tests C-STORE to (started by the tests themselves)
  python3-gi gir1.2-gstreamer-1.0  # benches/peer.py, the Python peer `sonoflow bench` runs
  nginx openssl  # serve/ingress.sh: the TLS + bearer-token ingress tests/remote.rs puts before MLServer
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || fail "missing Debian packages (${missing[*]}) and no apt-get on this machine; install them by hand"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || fail "missing Debian packages (${missing[*]}); run as root or install sudo"
    SUDO="sudo"
  fi
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq || fail "apt-get update failed; check the network or the apt sources"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install failed for: ${missing[*]}"
else
  say "Debian packages: present"
fi

# --- 2. onnxruntime shared library (pinned wheel in .venv) -------------------
if [ -f "$ORT_DYLIB_PATH" ]; then
  say "onnxruntime $ORT_VERSION: present ($ORT_DYLIB_PATH)"
else
  PY="$(command -v python3 || true)"
  [ -n "$PY" ] || fail "python3 not found; install the python3 package"
  if [ ! -x "$SONOFLOW_VENV/bin/python" ]; then
    say "creating Python venv at $SONOFLOW_VENV"
    "$PY" -m venv "$SONOFLOW_VENV" || fail "python3 -m venv failed; install the python3-venv package"
  fi
  say "installing onnxruntime==$ORT_VERSION from PyPI into $SONOFLOW_VENV"
  "$SONOFLOW_VENV/bin/python" -m pip install -q --disable-pip-version-check "onnxruntime==$ORT_VERSION" \
    || fail "pip could not install onnxruntime==$ORT_VERSION"
  found="$(ls "$SONOFLOW_VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so."$ORT_VERSION" 2>/dev/null | head -n1 || true)"
  [ -n "$found" ] || fail "the onnxruntime wheel has no libonnxruntime.so.$ORT_VERSION under $SONOFLOW_VENV"
  ln -sf "$found" "$ORT_DYLIB_PATH"
  say "onnxruntime library: $ORT_DYLIB_PATH"
fi

# --- 3. DICOM test files (pydicom-data, pydicom; MIT) ------------------------
# Real scanner files for the DICOM source's tests and pipelines/dicom-cine.toml;
# installed into the venv, never committed. Linked at stable paths:
#   $SONOFLOW_VENV/dicom-samples/pydicom-data  (pydicom-data's files)
#   $SONOFLOW_VENV/dicom-samples/pydicom       (pydicom's own test files)
PYDICOM_DATA_VERSION="1.0.0"
PYDICOM_VERSION="3.0.2"
SAMPLES="$SONOFLOW_VENV/dicom-samples"
if [ -f "$SAMPLES/pydicom-data/color3d_jpeg_baseline.dcm" ] && [ -f "$SAMPLES/pydicom/examples_ybr_color.dcm" ]; then
  say "DICOM test files: present ($SAMPLES)"
else
  if [ ! -x "$SONOFLOW_VENV/bin/python" ]; then
    PY="$(command -v python3 || true)"
    [ -n "$PY" ] || fail "python3 not found; install the python3 package"
    say "creating Python venv at $SONOFLOW_VENV"
    "$PY" -m venv "$SONOFLOW_VENV" || fail "python3 -m venv failed; install the python3-venv package"
  fi
  say "installing pydicom-data==$PYDICOM_DATA_VERSION and pydicom==$PYDICOM_VERSION from PyPI into $SONOFLOW_VENV"
  "$SONOFLOW_VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "pydicom-data==$PYDICOM_DATA_VERSION" "pydicom==$PYDICOM_VERSION" \
    || fail "pip could not install pydicom-data and pydicom (the DICOM tests need them)"
  dirs="$("$SONOFLOW_VENV/bin/python" -c 'import os, data_store, pydicom
print(os.path.join(os.path.dirname(data_store.__file__), "data"))
print(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files"))')" \
    || fail "pydicom-data or pydicom was installed but cannot be imported from $SONOFLOW_VENV"
  mkdir -p "$SAMPLES"
  ln -sfn "$(sed -n 1p <<<"$dirs")" "$SAMPLES/pydicom-data"
  ln -sfn "$(sed -n 2p <<<"$dirs")" "$SAMPLES/pydicom"
  [ -f "$SAMPLES/pydicom-data/color3d_jpeg_baseline.dcm" ] \
    || fail "pydicom-data $PYDICOM_DATA_VERSION has no color3d_jpeg_baseline.dcm under $SAMPLES/pydicom-data"
  say "DICOM test files: $SAMPLES"
fi

# --- 3b. The KServe v2 server's venv (MLServer; tests/remote.rs serves the head) --
bash "$ROOT/scripts/serve-venv.sh" || fail "scripts/serve-venv.sh failed (see above)"

# --- 4. Rust toolchain and build ---------------------------------------------
command -v cargo >/dev/null || fail "cargo not found; install Rust 1.92 or newer with rustup (https://rustup.rs) and re-run"
if [ "${1:-}" != "--no-build" ]; then
  say "building sonoflow (cargo build --release; incremental after the first time)"
  (cd "$ROOT" && cargo build --release --locked -q -p sonoflow) || fail "cargo build failed (see above)"
fi
say "ready"
